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
    "load_yaml_mapping",
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


def _field_path(loc: tuple[int | str, ...]) -> str:
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
    text = f"{source}: {_field_path(location)}: {message}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return text.translate(_ESCAPE_CONTROL)


# Messages quote the offending value; a newline in it must not split the one-line error (or
# forge a second log line), so control characters are shown escaped, as Python writes them.
_ESCAPE_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` refusing documents nested too deep or expanding to too many nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        # Nodes each composed node stands for, aliases expanded; keyed by id() because the
        # nodes stay alive in the document tree until loading ends.
        self._expanded: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:
                raise yaml.composer.ComposerError(None, None, "recursive alias", mark)
            return node
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
            )
        node = super().compose_node(parent, index)
        self._depth -= 1
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._expanded[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._expanded[id(k)] + self._expanded[id(v)] for k, v in node.value)
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"stands for more than {MAX_YAML_NODES} nodes (aliases expanded)", mark
            )
        self._expanded[id(node)] = size
        return node


def parse_yaml_mapping(text: str, source: str, error: type[Exception]) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping; problems raise `error` naming `source`."""
    loader = _BoundedLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"{source}: invalid YAML{where}: {problem}") from None
    except (ValueError, OverflowError) as exc:
        # Scalars the safe constructor cannot represent: a 5,000-digit integer, 2024-13-45.
        raise error(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
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
