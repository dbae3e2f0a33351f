"""OpenAPI 3.0 schemas as JSON Schema validators, for checking the Jira emulator against the spec.

OpenAPI 3.0 schema objects are JSON Schema (draft 4/5) with a few differences; this module
converts them so plain `jsonschema` can validate:

- `nullable: true` becomes `anyOf: [<schema>, {"type": "null"}]` (draft 4 has no `nullable`);
- `$ref: "#/components/schemas/X"` is rewritten to an absolute URI into a document held in a
  `referencing` registry that never retrieves anything, so a dangling reference is an error;
- a `$ref`'s siblings are dropped, as OpenAPI 3.0 says they are ignored;
- `readOnly`/`writeOnly` depend on the direction: in a response (read) a `writeOnly` property
  must not appear and is not required; in a request (write) a `readOnly` property is not required
  (the spec says clients SHOULD NOT send it and Jira ignores it, so it is not forbidden).

`format` is not checked: the spec calls Jira's timestamps `date-time`, yet Jira sends
`2021-01-18T23:45:00.000+0000`, which is not RFC 3339, and the emulator must match Jira, not the
annotation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

Direction = Literal["read", "write"]

_SCHEMA_REF_PREFIX = "#/components/schemas/"
_NULL: dict[str, Any] = {"type": "null"}
_FORBIDDEN: dict[str, Any] = {"not": {}}


def _base_uri(direction: Direction) -> str:
    return f"urn:corral:jira-openapi:{direction}"


def convert(schema: Any, direction: Direction) -> Any:
    """The JSON Schema (draft 4) equivalent of an OpenAPI 3.0 schema object."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith(_SCHEMA_REF_PREFIX):
            raise ValueError(f"{ref}: only references to component schemas are supported")
        return {"$ref": _base_uri(direction) + ref}

    out: dict[str, Any] = {}
    hidden = "writeOnly" if direction == "read" else "readOnly"
    for key, value in schema.items():
        if key == "nullable":
            continue
        if key == "properties":
            out[key] = {
                name: _FORBIDDEN
                if direction == "read" and isinstance(prop, dict) and prop.get("writeOnly")
                else convert(prop, direction)
                for name, prop in value.items()
            }
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = convert(value, direction)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(item, direction) for item in value]
        elif key == "required":
            properties = schema.get("properties", {})
            out[key] = [n for n in value if not properties.get(n, {}).get(hidden)]
            if not out[key]:
                del out[key]  # draft 4 requires a non-empty list
        else:
            out[key] = value
    if schema.get("nullable") is True:
        return {"anyOf": [out, _NULL]}
    return out


class OpenAPISpec:
    """Validators for the request and response bodies of the operations of one spec."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        registry: Registry[Any] = Registry()
        for direction in ("read", "write"):
            schemas = document.get("components", {}).get("schemas", {})
            converted = {
                "components": {
                    "schemas": {name: convert(s, direction) for name, s in schemas.items()}
                }
            }
            registry = registry.with_resource(
                _base_uri(direction), DRAFT4.create_resource(converted)
            )
        self._registry = registry.crawl()

    @classmethod
    def load(cls, path: Path) -> OpenAPISpec:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def operations(self) -> list[tuple[str, str]]:
        """Every (path, METHOD) the spec describes."""
        return [
            (path, method.upper())
            for path, item in self.document["paths"].items()
            for method in ("get", "put", "post", "delete", "patch")
            if method in item
        ]

    def _operation(self, path: str, method: str) -> dict[str, Any]:
        try:
            op: dict[str, Any] = self.document["paths"][path][method.lower()]
        except KeyError:
            raise KeyError(f"{method} {path}: not in the spec") from None
        return op

    def validator(self, schema: dict[str, Any], direction: Direction) -> Draft4Validator:
        """A validator for an OpenAPI schema object of this spec."""
        return Draft4Validator(convert(schema, direction), registry=self._registry)

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any] | None:
        """The JSON body schema of a response, or None when the spec gives none for it."""
        responses = self._operation(path, method)["responses"]
        response = responses.get(str(status)) or responses.get("default")
        if response is None:
            raise KeyError(f"{method} {path}: status {status} is not a documented response")
        schema: dict[str, Any] | None = (
            response.get("content", {}).get("application/json", {}).get("schema")
        )
        return schema

    def request_schema(self, path: str, method: str) -> dict[str, Any]:
        body = self._operation(path, method).get("requestBody")
        if body is None:
            raise KeyError(f"{method} {path}: takes no request body")
        schema: dict[str, Any] = body["content"]["application/json"]["schema"]
        return schema

    def response_validator(self, path: str, method: str, status: int) -> Draft4Validator | None:
        schema = self.response_schema(path, method, status)
        return None if schema is None else self.validator(schema, "read")

    def request_validator(self, path: str, method: str) -> Draft4Validator:
        return self.validator(self.request_schema(path, method), "write")
