"""Line-aware YAML reading: the data, plus the line of every key, and friendly syntax errors.

PyYAML's C parser builds the node tree; one walk over it produces plain Python data and a map
from YAML path to line number, and catches duplicate keys that ``yaml.safe_load`` would
silently collapse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tradesignals_dagster.registry.errors import Problem, display_path

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


def read_yaml(path: Path, problems: list[Problem]) -> YamlDoc | None:
    """Parse ``path``; on failure append a located problem and return ``None``."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(shown, None, "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, None, "", f"cannot read file: {exc}"))
        return None
    return parse_yaml(text, shown, problems)


def parse_yaml(text: str, shown: str, problems: list[Problem]) -> YamlDoc | None:
    """Parse YAML text that came from ``shown``; see :func:`read_yaml`."""
    if not text.strip():
        problems.append(Problem(shown, None, "", "file is empty"))
        return None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        lines = text.splitlines()
        bad_line = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
        if "\t" in bad_line or "tab" in str(reason).lower():
            reason = f"{reason} (YAML does not allow tabs for indentation; use spaces)"
        problems.append(Problem(shown, line, "", f"YAML syntax error: {reason}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(shown, None, "", f"YAML syntax error: {exc}"))
        return None
    finally:
        loader.dispose()
    if node is None:
        problems.append(Problem(shown, None, "", "file holds no YAML document"))
        return None
    doc = YamlDoc(shown, None)
    ctor = yaml.SafeLoader("")
    try:
        doc.data = _build(node, (), doc, ctor, problems)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        problems.append(Problem(shown, None, "", f"YAML error: {exc}"))
        return None
    return doc


def _build(
    node: yaml.Node, path: PathKey, doc: YamlDoc, ctor: yaml.SafeLoader, problems: list[Problem]
) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = ctor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                problems.append(
                    Problem(
                        doc.file,
                        key_node.start_mark.line + 1,
                        format_path(path),
                        "mapping keys must be plain scalars",
                    )
                )
                continue
            skey = str(key) if not isinstance(key, str) else key
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
    return ctor.construct_object(node, deep=True)
