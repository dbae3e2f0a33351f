"""Turning pydantic validation errors and YAML problems into one clear line.

YAML is parsed with bounds, because manifests come from whoever wrote the bundle: nesting deeper
than `MAX_YAML_DEPTH` would otherwise exhaust the interpreter's stack, and aliases (``*a``) let a
few hundred bytes stand for billions of nodes once anything walks the result ("billion laughs").
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "FieldProblem",
    "check_type",
    "describe_validation_error",
    "did_you_mean",
    "field_path",
    "first_problem",
    "load_yaml_mapping",
    "one_line",
    "parse_yaml_mapping",
    "unknown_key",
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
        elif _VALIDATOR_STEP.fullmatch(str(part)):
            # pydantic adds validator names to the location; they mean nothing to an operator
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def describe_validation_error(source: str, error: ValidationError, schema: Any = None) -> str:
    """The first problem as ``source: field.path: what is wrong`` (+ how many more).

    With `schema`, the type validated (a model, or e.g. a list of one), an unknown key is
    listed with the keys known in its place.
    """
    problem = first_problem(error, schema)
    text = f"{source}: {field_path(problem.location)}: {problem}"
    count = error.error_count()
    if count > 1:
        text += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return one_line(text)


def first_problem(error: ValidationError, schema: Any = None) -> FieldProblem:
    """The first problem of `error`, its location and one-line message (see above)."""
    first = error.errors(include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    location = tuple(first["loc"])
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldProblem):
        location += cause.location
    if first["type"] == "extra_forbidden":
        known = _known_keys(schema, location[:-1])
        message = unknown_key(str(location[-1]), known) if known is not None else "unknown key"
    elif first["type"] == "missing":
        message = "is required"
    return FieldProblem(location, message)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``; did you mean "x"?`` for the closest of `candidates`, or nothing if none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


def unknown_key(key: str, known: Sequence[str]) -> str:
    """The message for an unknown key: the closest known one, and all of them."""
    return f"unknown key{did_you_mean(key, known)} (known: {', '.join(known)})"


def _known_keys(schema: Any, location: tuple[int | str, ...]) -> list[str] | None:
    """The keys of the model found at `location` inside the type `schema`, if it is one."""
    node = schema
    for part in location:
        if isinstance(part, str) and part.startswith(("function-", "constrained-")):
            continue
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            node = None if field is None else field.annotation
        elif get_origin(node) in (dict, Mapping):
            node = get_args(node)[1]
        elif get_origin(node) in (list, tuple, Sequence):
            node = get_args(node)[0]
        else:
            return None
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return None


def _unwrap(node: Any) -> Any:
    """`X` of ``Annotated[X, ...]`` and of ``X | None``."""
    if get_origin(node) is Annotated:
        return _unwrap(get_args(node)[0])
    if get_origin(node) in (Union, types.UnionType):
        options = [a for a in get_args(node) if a is not type(None)]
        return _unwrap(options[0]) if len(options) == 1 else node
    return node


def check_type(schema: Any, value: Any) -> None:
    """Validate `value` as `schema` from inside another validator: the first problem raises
    `FieldProblem`, so the message names the place inside the field."""
    try:
        TypeAdapter(schema).validate_python(value)
    except ValidationError as exc:
        raise first_problem(exc, schema) from None


# Messages quote the offending value; a newline in it must not split the one-line error (or
# forge a second log line), so control characters are shown escaped, as Python writes them.
# The steps pydantic-core names in a location: validator functions and constrained types.
_VALIDATOR_STEP = re.compile(
    r"function-(after|before|plain|wrap)\[.*\]|constrained-(bytes|float|int|str)"
)
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
        raise error(describe_validation_error(source, exc, model)) from None
