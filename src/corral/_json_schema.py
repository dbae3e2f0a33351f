"""JSON Schemas in a manifest (`config_schema`, each command's `input_schema` and
`output_schema`): checked to be self-contained and cheap, validated offline.

A schema comes from the bundle's author, so it is treated as hostile input:

- Nothing is ever fetched or read for it. Only references into the schema itself (``"#"`` and
  ``"#/json/pointer"``) are allowed, and the validator's registry refuses every retrieval, so
  even a reference that slipped past the checks here could not reach the network or the disk.
- Keywords that move the base URI or resolve dynamically (``$id`` below the top level,
  ``$anchor``, ``$dynamicRef``...) are refused: with them, ``"#/..."`` would no longer mean
  "from the top of this schema", and the cost estimate below could be fooled.
- Its cost is bounded before any validator sees it: nesting depth and node count, both counted
  with every reference expanded in place (and what an ``unevaluated*`` keyword evaluates again
  counted again). That expanded size bounds the work of validation, so ``$defs`` + ``allOf``
  chains that double at each step are refused up front instead of keeping the host busy for
  minutes. References that loop back on themselves are refused too.

The checks walk every dict and list, so they also flag a ``"$ref"`` string inside data (an
``enum`` or ``default`` value): harmless over-caution for a plugin's schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import jsonschema
import referencing
from jsonschema.protocols import Validator

from ._validation import FieldProblem, field_path, one_line

__all__ = [
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_NODES",
    "check_schema",
    "first_violation",
    "offline_validator",
]

MAX_SCHEMA_DEPTH = 64
"""Deepest nesting of objects and arrays, references expanded (jsonschema recurses per level)."""
MAX_SCHEMA_NODES = 10_000
"""Most values a schema may hold, each reference counted as the whole schema it points to."""

_Location = tuple[int | str, ...]
_DIALECTS = {
    str(validator.META_SCHEMA.get("$id") or validator.META_SCHEMA["id"]).rstrip("#"): validator
    for validator in (
        jsonschema.Draft4Validator,
        jsonschema.Draft6Validator,
        jsonschema.Draft7Validator,
        jsonschema.Draft201909Validator,
        jsonschema.Draft202012Validator,
    )
}
_LATEST = jsonschema.Draft202012Validator
_DEFINITIONS = ("$defs", "definitions")
_REEVALUATING = ("unevaluatedProperties", "unevaluatedItems")
# Keywords that make a reference mean something other than "this place in this schema".
_RELOCATING = ("$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveAnchor", "$recursiveRef")


# A registry built without `retrieve` refuses every URI it does not hold (NoSuchResource); it
# replaces jsonschema's default, which would fetch remote and file: references.
_OFFLINE: referencing.Registry[Any] = referencing.Registry()


def offline_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for `schema` that resolves references only inside `schema` itself."""
    validator_class = _dialect(schema)
    return validator_class(dict(schema), registry=_OFFLINE)


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse a schema that is invalid, refers outside itself or is too costly to validate.

    Raises `FieldProblem` whose location is the path inside the schema.
    """
    if not schema:
        return
    validator_class = _dialect(schema)
    id_keyword = "id" if validator_class is jsonschema.Draft4Validator else "$id"
    _check_shape(schema, id_keyword)
    # Only now is it safe to hand the schema to jsonschema: the metaschema check recurses once
    # per level and would walk an alias bomb whole.
    try:
        validator_class.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        raise FieldProblem(tuple(exc.path), f"is not a valid JSON Schema: {exc.message}") from None
    _Expansion(schema).check()


def _dialect(schema: Mapping[str, Any]) -> type[Validator]:
    declared = schema.get("$schema")
    if declared is None:
        return _LATEST
    if not isinstance(declared, str) or declared.rstrip("#") not in _DIALECTS:
        known = ", ".join(sorted(_DIALECTS))
        raise FieldProblem(("$schema",), f"{declared!r} is not a known dialect ({known})")
    return _DIALECTS[declared.rstrip("#")]


def _check_shape(schema: Mapping[str, Any], id_keyword: str) -> None:
    """Depth, size, JSON types and reference syntax, walked without recursion."""
    nodes = 0
    stack: list[tuple[object, _Location]] = [(schema, ())]
    while stack:
        value, location = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise FieldProblem((), f"has more than {MAX_SCHEMA_NODES} values")
        if len(location) > MAX_SCHEMA_DEPTH:
            raise FieldProblem(location, f"nested deeper than {MAX_SCHEMA_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise FieldProblem(location, f"key {key!r} is not a string")
                _check_keyword(key, item, (*location, key), id_keyword)
                stack.append((item, (*location, key)))
        elif isinstance(value, list):
            stack.extend((item, (*location, index)) for index, item in enumerate(value))
        elif value is not None and not isinstance(value, str | int | float | bool):
            raise FieldProblem(location, f"{type(value).__name__} is not a JSON value")


def _check_keyword(key: str, value: object, location: _Location, id_keyword: str) -> None:
    if not isinstance(value, str):
        return
    if key == "$ref":
        _pointer(value, location)
    elif key in _RELOCATING:
        raise FieldProblem(location, 'is not supported in a manifest schema (use "$ref": "#/...")')
    elif key in (id_keyword, "$schema") and len(location) > 1:
        raise FieldProblem(location, "is allowed only at the top of the schema")


def _pointer(ref: str, location: _Location) -> list[str]:
    """The JSON pointer parts of a local reference; anything else is refused."""
    if not ref.startswith("#"):
        raise FieldProblem(
            location, f'remote references are not allowed ({ref!r}; only "#/..." is)'
        )
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        raise FieldProblem(location, f'{ref!r} is not a JSON pointer like "#/$defs/name"')
    return [p.replace("~1", "/").replace("~0", "~") for p in fragment.split("/")[1:]]


class _Expansion:
    """Size and depth of the schema with every ``$ref`` replaced by what it points to."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._measured: dict[int, tuple[int, int]] = {}  # id(target) -> (nodes, height)
        self._following: set[int] = set()

    def check(self) -> None:
        self._measure(self._root, (), 0)

    def _measure(self, value: object, location: _Location, depth: int) -> tuple[int, int]:
        """(values, height) below `value`; a reference counts as one level plus its target."""
        if depth > MAX_SCHEMA_DEPTH:
            raise FieldProblem(
                location, f"nested deeper than {MAX_SCHEMA_DEPTH} levels with references expanded"
            )
        inner, height = 0, 0
        children: list[tuple[object, _Location]] = []
        if isinstance(value, dict):
            # Definitions at the top cost nothing until referenced, and are counted where they
            # are; counting them here too would charge a shared definition twice.
            children = [
                (item, (*location, key))
                for key, item in value.items()
                if value is not self._root or key not in _DEFINITIONS
            ]
        elif isinstance(value, list):
            children = [(item, (*location, index)) for index, item in enumerate(value)]
        for child, where in children:
            child_nodes, child_height = self._measure(child, where, depth + 1)
            inner, height = inner + child_nodes, max(height, child_height + 1)
        if isinstance(value, dict) and isinstance(value.get("$ref"), str):
            ref_nodes, ref_height = self._follow(value["$ref"], (*location, "$ref"), depth + 1)
            inner, height = inner + ref_nodes, max(height, ref_height + 1)
        if isinstance(value, dict):
            # jsonschema evaluates the siblings of an unevaluated* keyword once more to learn
            # what they evaluated; nested, that doubling is exponential without any $ref.
            inner *= 1 + sum(1 for keyword in _REEVALUATING if keyword in value)
        nodes = 1 + inner
        if nodes > MAX_SCHEMA_NODES:
            raise FieldProblem(
                location, f"stands for more than {MAX_SCHEMA_NODES} values with references expanded"
            )
        return nodes, height

    def _follow(self, ref: str, location: _Location, depth: int) -> tuple[int, int]:
        target, target_location = self._resolve(ref, location)
        key = id(target)
        if key in self._following:
            raise FieldProblem(location, f"{ref!r} refers back to itself; recursion is not allowed")
        if key not in self._measured:
            self._following.add(key)
            self._measured[key] = self._measure(target, target_location, depth)
            self._following.discard(key)
        nodes, height = self._measured[key]
        if depth + height > MAX_SCHEMA_DEPTH:
            raise FieldProblem(
                location, f"nested deeper than {MAX_SCHEMA_DEPTH} levels with references expanded"
            )
        return nodes, height

    def _resolve(self, ref: str, location: _Location) -> tuple[object, _Location]:
        """What `ref` points to, and where that is in the schema."""
        value: object = self._root
        target: _Location = ()
        for part in _pointer(ref, location):
            if isinstance(value, dict) and part in value:
                value, target = value[part], (*target, part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value, target = value[int(part)], (*target, int(part))
            else:
                raise FieldProblem(location, f"{ref!r} points to nothing in the schema")
        return value, target


_MAX_MESSAGE = 300
"""jsonschema quotes the offending value whole; a huge one must not become a huge line."""


def first_violation(validator: Validator, value: Any, root: str) -> str | None:
    """``root.field.path: message`` for the most relevant error, or None if `value` is valid."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    location: tuple[int | str, ...] = (root, *error.absolute_path)
    missing = _missing_property(error)
    if missing is not None:
        location += (missing,)
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return one_line(f"{field_path(location)}: {message}")


def _missing_property(error: jsonschema.ValidationError) -> str | None:
    """The property a ``required`` error is about, so the path names the field itself."""
    required = error.validator_value
    if error.validator != "required" or not isinstance(required, list):
        return None
    # One error per missing property; its message quotes the name.
    return next((name for name in required if repr(name) in error.message), None)
