"""The packages' layering, read from the source: `engine` (below) knows nothing of `lsp_server` or
of the `diffill` command, and `lsp_server` does not import the command that sits above both.

Imports are read with ast: import statements anywhere in a module (top level or inside a
function), and the strings that reach the import system by name (``importlib.import_module``,
``__import__``, ``importlib.util.find_spec``), including strings kept in a table and passed on later."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: calls that import a module named by a string
DYNAMIC = {"import_module", "__import__", "find_spec"}


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings (they may name anything)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def references(path: Path, package: str, strings: bool = True) -> list[str]:
    """Where the module at ``path`` imports ``package``, statically or by name (``file:line: what``).

    With ``strings``, any string (not a docstring) that is the package's name or one of its
    modules' counts too, wherever it stands: a table of module names imported later."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    named = re.compile(rf"^{package}(\.[\w.]*)?$")
    mentions = re.compile(rf"\b{package}\b")
    seen = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if named.match(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and named.match(node.module):
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in DYNAMIC:
                for arg in ast.walk(node):
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and mentions.search(arg.value):
                        found.append(f"{where}: {name}({arg.value!r})")
                        seen.add(id(arg))
        elif (strings and isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in seen
              and named.match(node.value.strip())):
            found.append(f"{where}: the module name {node.value!r} as a string (imported by name later?)")
    return found


def scan(directory: str, package: str, strings: bool = True) -> list[str]:
    return [hit for path in sorted((ROOT / directory).rglob("*.py")) for hit in references(path, package, strings)]


def test_engine_has_no_reference_to_lsp_server() -> None:
    assert scan("engine", "lsp_server") == []


def test_engine_does_not_import_the_command() -> None:
    # "diffill" is also a plain word in the data (file names, the server's name): imports only
    assert scan("engine", "diffill", strings=False) == []


def test_lsp_server_does_not_import_the_command() -> None:
    assert scan("lsp_server", "diffill", strings=False) == []


def test_the_command_composes_both() -> None:
    """The command is where engine and server meet: it imports both (so the scan reads real imports)."""
    assert scan("diffill", "lsp_server") and scan("diffill", "engine")


def test_the_scan_finds_every_kind_of_reference(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Docstrings may name lsp_server."""\n'
                      "import importlib\n"
                      "from lsp_server import cli\n"
                      "def f():\n"
                      "    import lsp_server.app\n"
                      "    importlib.import_module('lsp_server.bench.lsp')\n"
                      "    __import__(f'lsp_server.{1}')\n"
                      "MODULES = {'serve': 'lsp_server.cli'}\n", encoding="utf-8")
    hits = references(sample, "lsp_server")
    assert [h.split(": ", 1)[0].rsplit(":", 1)[1] for h in hits] == ["3", "5", "6", "7", "8"], hits
    assert references(sample, "lsp_server", strings=False)[-1].startswith(f"{sample}:7: __import__")
