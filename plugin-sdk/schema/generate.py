"""Regenerate manifest.schema.json from corral's Manifest model (a test keeps them equal)."""

import json
from pathlib import Path

from corral.manifest import manifest_json_schema

target = Path(__file__).with_name("manifest.schema.json")
target.write_text(json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n")
print(f"wrote {target}")
