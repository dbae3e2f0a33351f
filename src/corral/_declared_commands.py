"""The commands a Python plugin declares with ``@plugin.command``, read from its source.

`corral build` writes them into the bundle's manifest, so authors write each command once. The
source is parsed, never run: importing app.py on the host would run the author's module-level
code outside any sandbox, needing stand-ins for every host import it touches at import time,
and its requirements installed for the host's Python. Parsing costs milliseconds and sees
exactly what the author wrote. What it cannot see is refused with the line and the fix rather
than guessed:

- the command name and any ``input_schema=``/``output_schema=`` must be literals (or names bound
  to literals at the top of app.py);
- a type hint may use str, int, float, bool, None, Any, list, dict, Literal, Optional, unions
  and Annotated, and TypedDicts and dataclasses defined at the top of app.py (or imported with
  ``from module import Name`` from a sibling module of the plugin's source).

The description is the function's docstring. A command without hints or schemas is declared
with empty schemas (any input).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import BuildError

__all__ = ["declared_commands"]

_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_ARRAYS = {"list", "List", "Sequence", "tuple", "Tuple", "set", "Set", "frozenset"}
_OBJECTS = {"dict", "Dict", "Mapping"}
_SDK = "corral_sdk"


def declared_commands(app: Path) -> dict[str, dict[str, Any]]:
    """``{name: {description, input_schema, output_schema}}`` for each ``@plugin.command`` in
    the module `app` (app.py, or a package's __init__.py); `BuildError` names what it cannot
    read."""
    module = _Module.parse(app)
    commands: dict[str, dict[str, Any]] = {}
    for node in module.tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            if module.is_command_decorator(decorator):
                assert isinstance(decorator, ast.Call)
                name, spec = module.command(node, decorator)
                if name in commands:
                    raise module.error(decorator, f"command {name!r} is registered twice")
                commands[name] = spec
    return commands


@dataclass
class _Module:
    path: Path
    tree: ast.Module
    plugins: set[str] = field(default_factory=set)
    """Names bound to ``Plugin()`` at the top of the module."""
    literals: dict[str, ast.expr] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Local name -> (sibling module, name in it), from ``from module import name``."""
    _siblings: dict[str, _Module | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, path: Path) -> _Module:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as exc:
            raise BuildError(f"{path}:{exc.lineno}: invalid Python: {exc.msg}") from None
        except (OSError, ValueError) as exc:
            raise BuildError(f"{path}: cannot read: {exc}") from None
        module = cls(path, tree)
        for node in tree.body:
            module._index(node)
        return module

    def _index(self, node: ast.stmt) -> None:
        if isinstance(node, ast.ClassDef):
            self.classes[node.name] = node
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                self.imported[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                if self._is_plugin(node.value):
                    self.plugins.add(target.id)
                self.literals[target.id] = node.value

    def _is_plugin(self, value: ast.expr) -> bool:
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        if isinstance(func, ast.Name):
            return self.imported.get(func.id) == (_SDK, "Plugin")
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "Plugin"
            and isinstance(func.value, ast.Name)
            and func.value.id == _SDK
        )

    def error(self, node: ast.AST, message: str) -> BuildError:
        return BuildError(f"{self.path}:{getattr(node, 'lineno', '?')}: {message}")

    def is_command_decorator(self, decorator: ast.expr) -> bool:
        return (
            isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr == "command"
            and isinstance(decorator.func.value, ast.Name)
            and decorator.func.value.id in self.plugins
        )

    def command(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef, decorator: ast.Call
    ) -> tuple[str, dict[str, Any]]:
        if not decorator.args or not isinstance(decorator.args[0], ast.Constant):
            raise self.error(
                decorator,
                "the command name must be a string literal for corral build to declare it",
            )
        name = decorator.args[0].value
        if not isinstance(name, str):
            raise self.error(decorator, f"the command name must be a string, not {name!r}")
        given = {keyword.arg: keyword.value for keyword in decorator.keywords}
        where = f"command {name!r}"
        parameters = [*function.args.posonlyargs, *function.args.args]
        input_hint = parameters[0].annotation if parameters else None
        return name, {
            "description": ast.get_docstring(function) or "",
            "input_schema": self._schema(given.get("input_schema"), input_hint, where),
            "output_schema": self._schema(given.get("output_schema"), function.returns, where),
        }

    def _schema(self, given: ast.expr | None, hint: ast.expr | None, where: str) -> dict[str, Any]:
        if given is not None:
            value = self._literal(given, where)
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise self.error(given, f"{where}: a schema must be a dict, not {value!r}")
            return value
        if hint is None:
            return {}
        return _Hints(self, where).schema(hint)

    def _literal(self, node: ast.expr, where: str) -> Any:
        if isinstance(node, ast.Name) and node.id in self.literals:
            node = self.literals[node.id]
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise self.error(
                node,
                f"{where}: {ast.unparse(node)!r} is not a literal; corral build reads schemas "
                "without running app.py, so write the dict in place (or in manifest.yaml)",
            ) from None

    def class_named(self, name: str) -> tuple[_Module, ast.ClassDef] | None:
        """The class `name` refers to here: defined at the top, or imported from a sibling."""
        if name in self.classes:
            return self, self.classes[name]
        if name not in self.imported:
            return None
        module_name, original = self.imported[name]
        sibling = self._sibling(module_name)
        if sibling is None or original not in sibling.classes:
            return None
        return sibling, sibling.classes[original]

    def _sibling(self, module_name: str) -> _Module | None:
        if module_name not in self._siblings:
            base = self.path.parent.joinpath(*module_name.split("."))
            candidates = [base.with_suffix(".py"), base / "__init__.py"]
            found = next((c for c in candidates if c.is_file()), None)
            self._siblings[module_name] = None if found is None else _Module.parse(found)
        return self._siblings[module_name]


class _Hints:
    """Type hints turned into JSON Schema, classes inlined (they may not refer to themselves)."""

    def __init__(self, module: _Module, where: str) -> None:
        self._module = module
        self._where = where
        self._expanding: list[str] = []

    def schema(self, hint: ast.expr, module: _Module | None = None) -> dict[str, Any]:
        module = module or self._module
        if isinstance(hint, ast.Constant):
            if hint.value is None:
                return {"type": "null"}
            if isinstance(hint.value, str):  # a quoted (forward) reference
                try:
                    parsed = ast.parse(hint.value, mode="eval").body
                except SyntaxError:
                    raise self._unsupported(module, hint) from None
                return self.schema(ast.copy_location(parsed, hint), module)
        if isinstance(hint, ast.BinOp) and isinstance(hint.op, ast.BitOr):
            return _any_of([self.schema(hint.left, module), self.schema(hint.right, module)])
        name = _simple_name(hint)
        if name is not None:
            return self._named(name, hint, module)
        if isinstance(hint, ast.Subscript):
            return self._generic(hint, module)
        raise self._unsupported(module, hint)

    def _named(self, name: str, hint: ast.expr, module: _Module) -> dict[str, Any]:
        if name in _SCALARS:
            return {"type": _SCALARS[name]}
        if name == "Any" or name == "object":
            return {}
        if name == "None":
            return {"type": "null"}
        if name in _ARRAYS:
            return {"type": "array"}
        if name in _OBJECTS:
            return {"type": "object"}
        found = module.class_named(name) if isinstance(hint, ast.Name) else None
        if found is None:
            raise self._unsupported(module, hint)
        return self._class(*found, hint)

    def _generic(self, hint: ast.Subscript, module: _Module) -> dict[str, Any]:
        origin = _simple_name(hint.value)
        arguments = hint.slice.elts if isinstance(hint.slice, ast.Tuple) else [hint.slice]
        if origin in _ARRAYS and origin not in ("tuple", "Tuple"):
            return {"type": "array", "items": self.schema(arguments[0], module)}
        if origin in _OBJECTS and len(arguments) == 2:
            return {"type": "object", "additionalProperties": self.schema(arguments[1], module)}
        if origin == "Optional":
            return _any_of([self.schema(arguments[0], module), {"type": "null"}])
        if origin == "Union":
            return _any_of([self.schema(argument, module) for argument in arguments])
        if origin in ("Annotated", "Required", "NotRequired"):
            return self.schema(arguments[0], module)
        if origin == "Literal":
            try:
                return {"enum": [ast.literal_eval(argument) for argument in arguments]}
            except ValueError:
                raise self._unsupported(module, hint) from None
        raise self._unsupported(module, hint)

    def _class(self, module: _Module, node: ast.ClassDef, hint: ast.expr) -> dict[str, Any]:
        if node.name in self._expanding:
            raise module.error(
                hint, f"{self._where}: {node.name} refers to itself; write its schema by hand"
            )
        self._expanding.append(node.name)
        try:
            if _is_dataclass(node):
                return self._dataclass(module, node)
            if self._is_typed_dict(module, node):
                return self._typed_dict(module, node)
        finally:
            self._expanding.pop()
        raise module.error(
            hint, f"{self._where}: {node.name} is neither a TypedDict nor a dataclass"
        )

    def _is_typed_dict(self, module: _Module, node: ast.ClassDef) -> bool:
        return any(_simple_name(base) == "TypedDict" for base in node.bases) or any(
            self._is_typed_dict(*base) for base in _local_bases(module, node)
        )

    def _typed_dict(self, module: _Module, node: ast.ClassDef) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for base_module, base in _local_bases(module, node):
            inherited = self._typed_dict(base_module, base)
            properties.update(inherited["properties"])
            required += inherited.get("required", [])
        total = not any(
            keyword.arg == "total"
            and isinstance(keyword.value, ast.Constant)
            and keyword.value.value is False
            for keyword in node.keywords
        )
        for name, annotation, _ in _fields(node):
            properties[name] = self.schema(annotation, module)
            wrapper = (
                _simple_name(annotation.value) if isinstance(annotation, ast.Subscript) else None
            )
            if wrapper == "Required" or (total and wrapper != "NotRequired"):
                required.append(name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def _dataclass(self, module: _Module, node: ast.ClassDef) -> dict[str, Any]:
        # The SDK builds the dataclass from the input with `Class(**input)`: an unknown key
        # would fail there, so the schema refuses it first.
        properties: dict[str, Any] = {}
        required: list[str] = []
        for base_module, base in _local_bases(module, node):
            if _is_dataclass(base):
                inherited = self._dataclass(base_module, base)
                properties.update(inherited["properties"])
                required += inherited.get("required", [])
        for name, annotation, has_default in _fields(node):
            properties[name] = self.schema(annotation, module)
            if not has_default:
                required.append(name)
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        return schema

    def _unsupported(self, module: _Module, hint: ast.expr) -> BuildError:
        return module.error(
            hint,
            f"{self._where}: cannot turn the type hint {ast.unparse(hint)!r} into a JSON Schema "
            "(use str, int, float, bool, None, list, dict, Literal, unions, or a TypedDict or "
            "dataclass defined in the plugin; or pass input_schema=/output_schema=)",
        )


def _simple_name(node: ast.expr) -> str | None:
    """``List`` for ``List`` and ``typing.List``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr
    return None


def _local_bases(module: _Module, node: ast.ClassDef) -> list[tuple[_Module, ast.ClassDef]]:
    """The base classes of `node` defined in the plugin (where each one is)."""
    bases = []
    for base in node.bases:
        found = module.class_named(base.id) if isinstance(base, ast.Name) else None
        if found is not None:
            bases.append(found)
    return bases


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if _simple_name(target) == "dataclass":
            return True
    return False


def _fields(node: ast.ClassDef) -> list[tuple[str, ast.expr, bool]]:
    """(name, annotation, has a default) for each annotated field, ClassVars left out."""
    found = []
    for statement in node.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            annotation = statement.annotation
            origin = annotation.value if isinstance(annotation, ast.Subscript) else annotation
            if _simple_name(origin) == "ClassVar":
                continue
            found.append((statement.target.id, annotation, statement.value is not None))
    return found


def _any_of(schemas: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[Mapping[str, Any]] = []
    for schema in schemas:
        flat += schema["anyOf"] if list(schema) == ["anyOf"] else [schema]
    return {"anyOf": flat}
