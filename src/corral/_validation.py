"""Turning pydantic validation errors and YAML problems into one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["describe_validation_error", "load_yaml_mapping", "validate_model"]


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
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "is required"
    text = f"{source}: {_field_path(tuple(first['loc']))}: {message}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return text


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
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, source: str, error: type[Exception]) -> M:
    """Validate `data` against `model`; a failure raises `error` with one line naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe_validation_error(source, exc)) from None
