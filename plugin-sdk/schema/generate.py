"""Regenerate manifest.schema.json, corral.schema.json and docs/configuration.md from corral's
models (tests keep them equal)."""

import json
from pathlib import Path

from corral._config_reference import configuration_markdown, host_config_schema
from corral.manifest import manifest_json_schema

here = Path(__file__).parent
outputs = {
    here / "manifest.schema.json": json.dumps(manifest_json_schema(), indent=2, sort_keys=True),
    here / "corral.schema.json": json.dumps(host_config_schema(), indent=2, sort_keys=True),
    here.parent.parent / "docs" / "configuration.md": configuration_markdown().rstrip("\n"),
}
for target, text in outputs.items():
    target.parent.mkdir(exist_ok=True)
    target.write_text(text + "\n")
    print(f"wrote {target}")
