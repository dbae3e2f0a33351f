"""Turning pydantic validation errors and YAML problems into one clear line.

YAML is parsed with bounds, because manifests come from whoever wrote the bundle: nesting deeper
than `MAX_YAML_DEPTH` would otherwise exhaust the interpreter's stack, and aliases (``*a``) let a
few hundred bytes stand for billions of nodes once anything walks the result ("billion laughs").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "FieldProblem",
    "describe_validation_error",
    "field_path",
    "load_yaml_mapping",
    "one_line",
    "parse_yaml_mapping",
    "validate_model",
]

MAX_YAML_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted in a YAML document."""
MAX_YAML_NODES = 100_000
"""Most nodes a YAML document may stand for, counting each alias as the nodes it repeats."""


class FieldProblem(ValueError):
    """A validator's complaint about a place *inside* the field it checks.

    Raised from a pydantic field validator, its `location` is appended to the field's own, so the
    message names e.g. ``config_schema.properties.x.$ref`` rather than just ``config_schema``.
    """

    def __init__(self, location: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.location = location


def field_path(loc: tuple[int | str, ...]) -> str:
    """`loc` as people write it: ``plugins.hello.config.items[2]``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith(("function-", "constrained-")):
            # pydantic adds validator names to the location; they mean nothing to an operator
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def describe_validation_error(source: str, error: ValidationError) -> str:
    """The first problem as ``source: field.path: what is wrong`` (+ how many more)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    message = str(first["msg"])
    message = message.removeprefix("Value error, ")
    location = tuple(first["loc"])
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldProblem):
        location += cause.location
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "is required"
    text = f"{source}: {field_path(location)}: {message}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return one_line(text)


# Messages quote the offending value; a newline in it must not split the one-line error (or
# forge a second log line), so control characters are shown escaped, as Python writes them.
_ESCAPE_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


def one_line(text: str) -> str:
    """`text` with control characters escaped, so it stays one line."""
    return text.translate(_ESCAPE_CONTROL)


# libyaml's parser, where PyYAML was built with it: the pure-Python one runs at 60-200 KB/s and
# its scanner is quadratic in flow nesting, so one hostile megabyte would stall load() for ~15 s
# (about 2 s with libyaml, most of it spent in `_check_bounds`).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refused(Exception):
    """A bound exceeded, shaped like a YAML error (`problem`, `problem_mark`)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _check_bounds(text: str) -> None:
    """Refuse, from the event stream alone, a document too deep or expanding too far.

    Runs before anything is built: the loaders recurse once per level, and an alias is built as
    a shared reference that whatever walks the result later (validation, JSON) expands.
    """
    expanded: dict[str, int] = {}  # anchor -> nodes it stands for, once complete
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes so far) per open collection
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in expanded:
                raise _Refused("recursive or undefined alias", event.start_mark)
            size = expanded[event.anchor]
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_YAML_DEPTH:
                raise _Refused(f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            open_nodes.append((event.anchor, 1))
            continue
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                expanded[event.anchor] = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_nodes.pop()
            if anchor is not None:
                expanded[anchor] = size
        else:
            continue
        if open_nodes:
            anchor, so_far = open_nodes[-1]
            open_nodes[-1] = (anchor, so_far + size)
            size = so_far + size
        else:
            total += size
        if max(size, total) > MAX_YAML_NODES:
            problem = f"stands for more than {MAX_YAML_NODES} nodes (aliases expanded)"
            raise _Refused(problem, event.start_mark)


def parse_yaml_mapping(text: str, source: str, error: type[Exception]) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping; problems raise `error` naming `source`."""
    try:
        _check_bounds(text)
        data = yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, _Refused) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # A ReaderError (a control character, say) has no `problem`; its text's first line says.
        problem = getattr(exc, "problem", None) or str(exc).partition("\n")[0] or "unreadable"
        raise error(f"{source}: invalid YAML{where}: {problem}") from None
    except (ValueError, OverflowError) as exc:
        # Scalars the safe constructor cannot represent: a 5,000-digit integer, 2024-13-45.
        raise error(f"{source}: invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_yaml_mapping(path: Path, error: type[Exception]) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; problems raise `error` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    return parse_yaml_mapping(text, str(path), error)


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, source: str, error: type[Exception]) -> M:
    """Validate `data` against `model`; a failure raises `error` with one line naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe_validation_error(source, exc)) from None
