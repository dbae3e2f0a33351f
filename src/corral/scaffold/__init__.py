"""`corral new`: a plugin project that builds and passes its own test as it is.

Each language has a directory of templates (``<file>.tmpl``, with ``{{name}}`` standing for the
plugin's name), added to the ones every project shares (`common/`: the manifest, and the test,
which calls the plugin through a host whatever its language). The project is written into a
temporary directory beside the target and moved into place whole, so a failure leaves nothing
half-written, and an existing project is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .._errors import BuildError, ManifestError
from .._validation import validate_model
from ..manifest import PluginInfo

__all__ = ["LANGUAGES", "new_plugin"]

_TEMPLATES = Path(__file__).parent
_COMMON = "common"
LANGUAGES = {"python": "app.py", "js": "plugin.js"}
"""The languages `corral new` knows, each with the source file an author edits first."""
_SUFFIX = ".tmpl"


def new_plugin(name: str, directory: Path, lang: str = "python") -> Path:
    """Create the project of plugin `name` in `directory` (which must not exist or be empty)."""
    if lang not in LANGUAGES:
        raise BuildError(f"no template for {lang!r} (available: {', '.join(LANGUAGES)})")
    validate_model(PluginInfo, {"name": name, "version": "0.1.0"}, "plugin", ManifestError)
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BuildError(f"{directory}: already exists and is not empty; not overwriting it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        for template in _templates(lang):
            text = template.read_text(encoding="utf-8").replace("{{name}}", name)
            (staging / template.name.removesuffix(_SUFFIX)).write_text(text, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private to its creator
        os.replace(staging, directory)  # an empty directory is replaced, a non-empty one is not
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(f"{directory}: cannot create the project: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _templates(lang: str) -> list[Path]:
    return sorted(
        path for part in (_COMMON, lang) for path in (_TEMPLATES / part).glob(f"*{_SUFFIX}")
    )
