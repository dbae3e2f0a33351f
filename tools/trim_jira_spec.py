"""Trim Atlassian's Jira Cloud platform OpenAPI spec to the operations the emulator serves.

The full spec (v3, ~2.4 MB, 417 paths) is too big to vendor and mostly irrelevant; the
conformance tests need only the served operations and every schema they reach. Usage, from the
repository root, with the full spec checked out beside the repository:

    python tools/trim_jira_spec.py ../shared/jira/jira-cloud-platform-v3.openapi.json \
        tests/data/jira-openapi-subset.json

The output is deterministic (same input, same bytes), so re-running it shows a clean diff.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# (path, method) of every operation the emulator serves, including the removed search endpoints
# (kept because the emulator answers them with Jira's "removed" error).
SERVED_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("/rest/api/3/search/jql", "get"),
    ("/rest/api/3/search/jql", "post"),
    ("/rest/api/3/search", "get"),
    ("/rest/api/3/search", "post"),
    ("/rest/api/3/issue", "post"),
    ("/rest/api/3/issue/bulk", "post"),
    ("/rest/api/3/issue/{issueIdOrKey}", "get"),
    ("/rest/api/3/issue/{issueIdOrKey}", "put"),
    ("/rest/api/3/issue/{issueIdOrKey}", "delete"),
    ("/rest/api/3/issue/{issueIdOrKey}/transitions", "get"),
    ("/rest/api/3/issue/{issueIdOrKey}/transitions", "post"),
    ("/rest/api/3/issue/{issueIdOrKey}/changelog", "get"),
    ("/rest/api/3/myself", "get"),
    ("/rest/api/3/field", "get"),
    ("/rest/api/3/project", "get"),
    ("/rest/api/3/project/{projectIdOrKey}", "get"),
    ("/rest/api/3/issuetype", "get"),
    ("/rest/api/3/priority", "get"),
    ("/rest/api/3/status", "get"),
    ("/rest/api/3/serverInfo", "get"),
)

# Path-level keys that are not operations and apply to every method of the path.
_PATH_ITEM_SHARED = ("summary", "description", "parameters", "servers")


class SpecError(Exception):
    """The input is not the spec this script expects (missing operation or dangling $ref)."""


def _refs(node: Any) -> Iterator[str]:
    """Every local `$ref` target anywhere inside `node`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve_pointer(spec: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise SpecError(f"{ref}: only local references are supported")
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SpecError(f"{ref}: dangling reference")
        node = node[part]
    return node


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    """The subset of `spec` with the served operations and the components they reference."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in SERVED_OPERATIONS:
        item = spec.get("paths", {}).get(path)
        if item is None or method not in item:
            raise SpecError(f"{method.upper()} {path}: not in the input spec")
        kept = paths.setdefault(path, {k: item[k] for k in _PATH_ITEM_SHARED if k in item})
        kept[method] = item[method]

    # Walk references to a fixed point: a schema may reference others, which reference more.
    wanted: set[str] = set()
    pending = list(_refs(paths))
    while pending:
        ref = pending.pop()
        if ref in wanted:
            continue
        wanted.add(ref)
        pending.extend(_refs(_resolve_pointer(spec, ref)))

    components: dict[str, dict[str, Any]] = {}
    for ref in sorted(wanted):
        parts = ref[2:].split("/")
        if len(parts) != 3 or parts[0] != "components":
            raise SpecError(f"{ref}: expected a reference to #/components/<kind>/<name>")
        components.setdefault(parts[1], {})[parts[2]] = _resolve_pointer(spec, ref)
    # Operations name security schemes by key, not by $ref.
    schemes = spec.get("components", {}).get("securitySchemes", {})
    used_schemes = {
        name
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict)
        for requirement in op.get("security", [])
        for name in requirement
    }
    if used_schemes:
        components["securitySchemes"] = {k: schemes[k] for k in sorted(used_schemes)}

    used_tags = {
        tag
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict)
        for tag in op.get("tags", [])
    }
    info = dict(spec["info"])
    info["description"] = (
        "Subset of Atlassian's Jira Cloud platform REST API description: the operations the "
        "Corral Jira emulator serves and the components they reference, produced by "
        "tools/trim_jira_spec.py from the full spec."
    )
    return {
        "openapi": spec["openapi"],
        "info": info,
        "servers": spec.get("servers", []),
        "tags": [t for t in spec.get("tags", []) if t.get("name") in used_tags],
        "paths": paths,
        "components": {kind: dict(sorted(v.items())) for kind, v in sorted(components.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("full_spec", type=Path, help="Atlassian's full OpenAPI JSON")
    parser.add_argument("output", type=Path, help="where to write the subset")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.full_spec.read_text(encoding="utf-8"))
        subset = trim(spec)
    except (OSError, ValueError, SpecError) as exc:
        print(f"trim_jira_spec: {args.full_spec}: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(subset, indent=1, ensure_ascii=False) + "\n"
    # Write beside the target, then rename: an interrupted run never leaves half a file.
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    n_schemas = len(subset["components"].get("schemas", {}))
    print(f"{args.output}: {len(SERVED_OPERATIONS)} operations, {n_schemas} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
