"""Limits on YAML documents, checked before any Python data is built from them.

A registry is plain data: mappings, lists, strings, numbers, booleans. YAML can express much
more, and some of it is dangerous for a tool that runs on every pull request: tags that ask
for Python objects (``!!python/object``), aliases that expand exponentially ("billion
laughs"), aliases that contain themselves, nesting deep enough to exhaust the stack. These
checks make each of them a located problem instead of an exception, a hang or a memory blowup.

The limits are far above what any registry needs: :data:`MAX_DEPTH` levels of nesting,
:data:`MAX_ALIASES` alias uses per file and :data:`MAX_NODES` values once aliases are expanded.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from tradesignals_dagster.registry.errors import Problem

MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_NODES = 1_000_000

try:
    _Parser: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,unused-ignore]
    _HAS_LIBYAML = True
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = yaml.SafeLoader
    _HAS_LIBYAML = False

_STR_TAG = "tag:yaml.org,2002:str"
_KEY_KINDS = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}
_OPENERS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSERS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def may_skip_scan(text: str) -> bool:
    """Whether :func:`scan_events` and :func:`check_expansion` have nothing to find in ``text``.

    Without ``!``, ``&`` or ``*`` there can be no tag, anchor or alias; libyaml itself refuses
    nesting beyond 1000 levels and the data walk stops at :data:`MAX_DEPTH`. Most registry
    files take this path, which halves the time to load a large registry.
    """
    return _HAS_LIBYAML and not any(mark in text for mark in ("!", "&", "*"))


def scan_events(text: str, shown: str, problems: list[Problem]) -> bool:
    """Walk the event stream: no explicit tag, nesting under :data:`MAX_DEPTH`, few aliases.

    Returns whether the text may be composed into nodes. Syntax errors are reported here too.
    """
    loader = _Parser(text)
    depth = aliases = 0
    ok = True
    try:
        while loader.check_event():
            event = loader.get_event()
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            tag = getattr(event, "tag", None)
            if tag is not None and isinstance(event, (yaml.ScalarEvent, *_OPENERS)):
                problems.append(Problem(shown, line, "", f"YAML tag {tag!r} is not allowed: {_TAG_REASON}"))
                ok = False
            if isinstance(event, _OPENERS):
                depth += 1
                if depth > MAX_DEPTH:
                    problems.append(Problem(shown, line, "", f"nesting is deeper than {MAX_DEPTH} levels"))
                    return False
            elif isinstance(event, _CLOSERS):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    problems.append(
                        Problem(shown, line, "", f"more than {MAX_ALIASES} aliases (*name) in one file")
                    )
                    return False
    except yaml.YAMLError as exc:
        problems.append(syntax_problem(exc, text, shown))
        return False
    finally:
        loader.dispose()
    return ok


def syntax_problem(exc: yaml.YAMLError, text: str, shown: str, what: str = "YAML syntax error") -> Problem:
    """A YAML error as a located problem, with a hint when tabs are to blame."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(shown, None, "", f"{what}: {exc}")
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    reason = exc.problem or exc.context or "invalid YAML"
    lines = text.splitlines()
    bad_line = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
    if "\t" in bad_line or "tab" in str(reason).lower():
        reason = f"{reason} (YAML does not allow tabs for indentation; use spaces)"
    return Problem(shown, line, "", f"{what}: {reason}")


_TAG_REASON = "the registry is plain data (remove the '!' tag; quote the value if it is a string)"


def check_expansion(root: yaml.Node, shown: str, problems: list[Problem]) -> bool:
    """Refuse aliases that contain themselves, nest deeper than :data:`MAX_DEPTH` levels once
    expanded, or expand to more than :data:`MAX_NODES` values.

    Counts each node once per place it appears (what building the data would cost), memoised
    per node so the count itself stays linear in the file's size.
    """
    seen: dict[int, tuple[int, int]] = {}  # node id -> (values once expanded, height)
    ancestors: set[int] = set()

    def measure(node: yaml.Node, level: int) -> tuple[int, int]:
        key = id(node)
        if key in ancestors:
            raise _Refused(node, "recursive alias: this value contains itself")
        known = seen.get(key)
        if known is None:
            known = _measure_children(node, level, ancestors, measure)
            seen[key] = known
        if level + known[1] > MAX_DEPTH:
            raise _Refused(node, f"aliases nest values deeper than {MAX_DEPTH} levels")
        return known

    try:
        total, _ = measure(root, 0)
    except _Refused as exc:
        problems.append(Problem(shown, exc.node.start_mark.line + 1, "", exc.reason))
        return False
    if total > MAX_NODES:
        problems.append(
            Problem(
                shown, None, "", f"aliases expand to more than {MAX_NODES:,} values; refusing to build them"
            )
        )
        return False
    return True


def _measure_children(
    node: yaml.Node, level: int, ancestors: set[int], measure: Callable[[yaml.Node, int], tuple[int, int]]
) -> tuple[int, int]:
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return 1, 0
    total, height = 1, 0
    ancestors.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
    for child in children:
        size, child_height = measure(child, level + 1)
        total += size
        height = max(height, child_height + 1)
        if total > MAX_NODES:
            break
    ancestors.discard(id(node))
    return total, height


class _Refused(Exception):
    def __init__(self, node: yaml.Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason


def key_problem(node: yaml.Node) -> str | None:
    """Why ``node`` cannot be a mapping key, or ``None`` when it is a plain string.

    YAML 1.1 reads ``yes:``, ``~:`` or ``123:`` as a boolean, null or number; as a key that
    silently becomes a pipeline named ``True``, ``None`` or ``123``. Quoting makes it a string.
    """
    if not isinstance(node, yaml.ScalarNode):
        kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        return f"keys must be strings, got {kind}"
    if node.tag == _STR_TAG:
        return None
    kind = _KEY_KINDS.get(node.tag, "not a string")
    shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return f"key {shown!r} is read by YAML as {kind}; keys must be strings: quote it ('{shown}') or rename it"
