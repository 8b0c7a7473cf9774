"""The layers stay what the README says they are: read every module's imports (AST, no import).

- ``bot/domain`` is the pure core: no Slack, SQLAlchemy, httpx, msal or pydantic, anywhere in a
  module (a function-level import counts too).
- ``handlers/`` (Slack) and ``storage/`` (the database) do not import each other.
- Runtime code (``bot``, ``handlers``, ``storage``) never imports the stand-ins or the tests at
  module level: a production install has neither (tests/test_packaging.py). ``bot.app.demo``
  and ``pimbot emulator`` import the stand-ins inside the function that needs them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMPURE = {"slack_bolt", "slack_sdk", "sqlalchemy", "httpx", "msal", "pydantic"}


def modules(package: str) -> list[Path]:
    found = sorted((REPO / package).rglob("*.py"))
    assert found, f"no modules under {package}/"
    return found


def imported(node: ast.AST) -> Iterator[tuple[str, int]]:
    """(dotted module name, line) of every import in ``node``, however deeply nested."""
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield alias.name, child.lineno
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            yield child.module, child.lineno


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Imports that run when the module is imported: not in a function, not TYPE_CHECKING."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from imported(node)
            continue
        pending.extend(ast.iter_child_nodes(node))


def _root(name: str) -> str:
    return name.split(".")[0]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text("utf-8"), filename=str(path))


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_the_domain_imports_no_slack_database_http_msal_or_pydantic() -> None:
    offending = [
        f"{_where(path, line)} imports {name}"
        for path in modules("bot/domain")
        for name, line in imported(_parse(path))
        if _root(name) in IMPURE
    ]
    assert offending == []


@pytest.mark.parametrize(
    ("package", "forbidden"), [("handlers", "storage"), ("storage", "handlers")]
)
def test_handlers_and_storage_do_not_import_each_other(package: str, forbidden: str) -> None:
    offending = [
        f"{_where(path, line)} imports {name}"
        for path in modules(package)
        for name, line in imported(_parse(path))
        if _root(name) == forbidden
    ]
    assert offending == []


@pytest.mark.parametrize("package", ["bot", "handlers", "storage"])
def test_runtime_code_does_not_import_stand_ins_or_tests_at_module_level(package: str) -> None:
    offending = [
        f"{_where(path, line)} imports {name}"
        for path in modules(package)
        for name, line in module_level_imports(_parse(path))
        if _root(name) in {"stand_ins", "tests"}
    ]
    assert offending == []


# --- the checks themselves can fail ----------------------------------------------------------


def test_the_checks_see_nested_imports_and_allow_function_and_type_checking_ones() -> None:
    tree = ast.parse(
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import stand_ins.a\n"
        "try:\n    import stand_ins.b\nexcept ImportError:\n    pass\n"
        "class C:\n    import sqlalchemy\n"
        "def f():\n    import stand_ins.c\n    from pydantic import BaseModel\n"
    )
    everywhere = {name for name, _ in imported(tree)}
    assert {"stand_ins.a", "stand_ins.b", "stand_ins.c", "sqlalchemy", "pydantic"} <= everywhere
    at_import = {name for name, _ in module_level_imports(tree)}
    assert at_import == {"os", "typing", "stand_ins.b", "sqlalchemy"}
