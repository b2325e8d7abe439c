"""Line-aware YAML reading: the data, plus the line of every key, and friendly syntax errors.

PyYAML's C parser builds the node tree; one walk over it produces plain Python data and a map
from YAML path to line number, and catches duplicate keys that ``yaml.safe_load`` would
silently collapse. Before that walk, :mod:`~tradesignals_dagster.registry.yamlbounds` refuses
what plain data never needs and hostile input relies on: explicit tags, deep nesting, alias
bombs and recursive aliases. Keys must be strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tradesignals_dagster.registry.errors import Problem, UnreadableFileError, display_path
from tradesignals_dagster.registry.files import read_confined
from tradesignals_dagster.registry.yamlbounds import (
    MAX_DEPTH,
    check_expansion,
    key_problem,
    may_skip_scan,
    scan_events,
    syntax_problem,
)

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

PathKey = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A parsed YAML (or JSON) file: its data and where each YAML path sits in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int | None:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def format_path(path: PathKey) -> str:
    """``('Topics', 'x', 'fields', 0, 'name')`` -> ``Topics.x.fields[0].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(path: Path, problems: list[Problem], root: Path) -> YamlDoc | None:
    """Parse ``path``, a file that must lie inside ``root``; on failure append a problem, return ``None``.

    The file is read through :func:`read_confined` (regular file, inside ``root``, at most
    8 MiB), so a refused file is reported as ``file: reason`` and never quoted.
    """
    shown = display_path(path)
    try:
        text = read_confined(path, root)
    except UnreadableFileError as exc:
        problems.append(Problem(shown, None, "", exc.reason))
        return None
    return parse_yaml(text, shown, problems)


def parse_yaml(text: str, shown: str, problems: list[Problem]) -> YamlDoc | None:
    """Parse YAML text that came from ``shown``; see :func:`read_yaml`.

    Three passes, each bounded before the next runs: the event stream (tags, nesting depth,
    alias count), the node tree (recursive aliases, size after alias expansion), then the data.
    """
    if not text.strip():
        problems.append(Problem(shown, None, "", "file is empty"))
        return None
    plain = may_skip_scan(text)
    if not plain and not scan_events(text, shown, problems):
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        problems.append(syntax_problem(exc, text, shown))
        return None
    finally:
        loader.dispose()
    if node is None:
        problems.append(Problem(shown, None, "", "file holds no YAML document"))
        return None
    if not plain and not check_expansion(node, shown, problems):
        return None
    doc = YamlDoc(shown, None)
    ctor = yaml.SafeLoader("")
    try:
        doc.data = _build(node, (), doc, ctor, problems)
    except _TooDeep as exc:
        problems.append(Problem(shown, exc.line, "", f"nesting is deeper than {MAX_DEPTH} levels"))
        return None
    except yaml.MarkedYAMLError as exc:
        problems.append(syntax_problem(exc, text, shown, "YAML error"))
        return None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        problems.append(Problem(shown, None, "", f"YAML error: {exc}"))
        return None
    return doc


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(f"nesting deeper than {MAX_DEPTH} levels at line {line}")
        self.line = line


def _build(
    node: yaml.Node, path: PathKey, doc: YamlDoc, ctor: yaml.SafeLoader, problems: list[Problem]
) -> Any:
    if len(path) > MAX_DEPTH:  # reached only when the event scan was skipped
        raise _TooDeep(node.start_mark.line + 1)
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            reason = key_problem(key_node)
            if reason is not None:
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, format_path(path), reason))
                continue
            skey: str = key_node.value
            child = (*path, skey)
            if skey in out:
                problems.append(
                    Problem(
                        doc.file,
                        key_node.start_mark.line + 1,
                        format_path(child),
                        f"duplicate key '{skey}' (first at line {doc.lines.get(child)})",
                    )
                )
                continue
            doc.lines[child] = key_node.start_mark.line + 1
            out[skey] = _build(value_node, child, doc, ctor, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, ctor, problems) for i, item in enumerate(node.value)]
    try:
        return ctor.construct_object(node, deep=True)
    except ValueError:  # an integer of more than 4300 digits, a date that does not exist
        reason = "cannot be read as a value (a number with thousands of digits, or an impossible date?)"
        problems.append(Problem(doc.file, node.start_mark.line + 1, format_path(path), reason))
        return node.value
