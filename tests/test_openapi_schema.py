"""The OpenAPI 3.0 to JSON Schema converter the conformance tests rely on: each rule it implements
accepts what the spec allows and rejects what it does not, on toy schemas and on Jira's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from referencing.exceptions import Unresolvable

from openapi_schema import Direction, OpenAPISpec, convert

SUBSET = Path(__file__).parent / "data" / "jira-openapi-subset.json"


def spec_with(**schemas: Any) -> OpenAPISpec:
    return OpenAPISpec({"paths": {}, "components": {"schemas": schemas}})


def valid(spec: OpenAPISpec, schema: dict[str, Any], instance: Any, direction: Direction) -> bool:
    return spec.validator(schema, direction).is_valid(instance)


def test_nullable_admits_null_and_only_null() -> None:
    spec = spec_with()
    schema = {"type": "string", "nullable": True}
    assert valid(spec, schema, None, "read")
    assert valid(spec, schema, "x", "read")
    assert not valid(spec, schema, 3, "read")
    assert not valid(spec, {"type": "string"}, None, "read")


def test_nullable_enum_admits_null() -> None:
    schema = {"type": "string", "enum": ["a"], "nullable": True}
    assert valid(spec_with(), schema, None, "read")
    assert not valid(spec_with(), schema, "b", "read")


def test_refs_resolve_to_components_and_siblings_are_ignored() -> None:
    spec = spec_with(Name={"type": "string"})
    schema = {"$ref": "#/components/schemas/Name", "type": "integer"}
    assert valid(spec, schema, "x", "read")
    assert not valid(spec, schema, 1, "read")


def test_a_dangling_ref_is_an_error_not_a_fetch() -> None:
    spec = spec_with()
    with pytest.raises(Unresolvable):
        spec.validator({"$ref": "#/components/schemas/Missing"}, "read").is_valid(1)


def test_refs_outside_component_schemas_are_refused() -> None:
    with pytest.raises(ValueError, match="only references to component schemas"):
        convert({"$ref": "https://example.invalid/schema.json"}, "read")


def test_additional_properties_false_rejects_unknown_keys() -> None:
    spec = spec_with()
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert valid(spec, schema, {"a": 1}, "read")
    assert not valid(spec, schema, {"a": 1, "b": 2}, "read")


def test_additional_properties_schema_is_converted() -> None:
    spec = spec_with()
    schema = {"type": "object", "additionalProperties": {"type": "string", "nullable": True}}
    assert valid(spec, schema, {"a": None, "b": "x"}, "read")
    assert not valid(spec, schema, {"a": 1}, "read")


def test_write_only_property_is_forbidden_in_a_response_and_not_required() -> None:
    spec = spec_with()
    schema = {
        "type": "object",
        "required": ["secret"],
        "properties": {"secret": {"type": "string", "writeOnly": True}},
    }
    assert valid(spec, schema, {}, "read")
    assert not valid(spec, schema, {"secret": "x"}, "read")
    assert valid(spec, schema, {"secret": "x"}, "write")
    assert not valid(spec, schema, {}, "write")


def test_read_only_property_is_not_required_in_a_request() -> None:
    spec = spec_with()
    schema = {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string", "readOnly": True}},
    }
    assert valid(spec, schema, {}, "write")
    assert not valid(spec, schema, {}, "read")


def test_property_named_like_a_keyword_is_just_a_property() -> None:
    spec = spec_with()
    schema = {"type": "object", "properties": {"nullable": {"type": "boolean"}}}
    assert valid(spec, schema, {"nullable": True}, "read")
    assert not valid(spec, schema, {"nullable": "yes"}, "read")


def test_every_schema_of_the_vendored_subset_compiles() -> None:
    spec = OpenAPISpec.load(SUBSET)
    for path, method in spec.operations():
        for status in spec.document["paths"][path][method.lower()]["responses"]:
            validator = spec.response_validator(path, method, int(status))
            if validator is not None:
                validator.is_valid({})  # resolves the top-level reference


def test_jira_search_result_schema_rejects_wrong_bodies() -> None:
    spec = OpenAPISpec.load(SUBSET)
    validator = spec.response_validator("/rest/api/3/search/jql", "GET", 200)
    assert validator is not None
    good = {"issues": [{"id": "10001", "key": "P-1", "fields": {"summary": "s"}}], "isLast": True}
    assert validator.is_valid(good)
    # the removed search returned `total`; search/jql must not
    assert not validator.is_valid({**good, "total": 1})
    assert not validator.is_valid({**good, "isLast": "true"})
    assert not validator.is_valid({"issues": [{"id": 10001}], "isLast": True})
    assert not validator.is_valid({"issues": [{"id": "1", "changelog": {"histories": "x"}}]})


def test_jira_error_collection_schema() -> None:
    spec = OpenAPISpec.load(SUBSET)
    validator = spec.validator({"$ref": "#/components/schemas/ErrorCollection"}, "read")
    assert validator.is_valid({"errorMessages": ["x"], "errors": {}})
    assert not validator.is_valid({"errorMessages": "x", "errors": {}})
    assert not validator.is_valid({"message": "Internal Server Error"})
