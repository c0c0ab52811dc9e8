"""The import rules of STYLE.md: a pure domain, SQL only in storage, arrows pointing one way."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "clientstats"

# Names of sqlalchemy that build SQL (or tables): they belong in clientstats.storage only.
SQL_BUILDERS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "func",
        "case",
        "and_",
        "or_",
        "bindparam",
        "literal",
        "column",
        "table",
        "Table",
        "Column",
        "MetaData",
    }
)
SQL_MODULES = ("sqlalchemy.sql", "sqlalchemy.schema", "sqlalchemy.orm", "sqlalchemy.dialects")
TABLES = "clientstats.storage.tables"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "migrations" not in p.parts)


def imports(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, module, imported name or None) of every import in a module, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = (package or module_name(path)).split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, base, alias.name


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parent)}:{line}"


def test_the_walk_finds_the_modules_it_judges() -> None:
    names = {module_name(p) for p in modules()}
    assert {
        "clientstats.domain.ledger",
        "clientstats.domain.events",
        "clientstats.storage.sql_book",
        "clientstats.services.importing",
        "clientstats.api.health",
        "clientstats.cli",
    } <= names
    found = {(m, n) for _, m, n in imports(PACKAGE / "domain" / "booking.py")}
    assert ("clientstats.domain.ledger", "route_donation") in found


@pytest.mark.parametrize("path", modules(PACKAGE / "domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    bad = []
    for line, module, _ in imports(path):
        top = module.split(".")[0]
        if module == "clientstats.domain" or module.startswith("clientstats.domain."):
            continue
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        bad.append(f"{where(path, line)} imports {module}")
    assert bad == []


def outside_storage() -> list[Path]:
    return [p for p in modules() if "storage" not in p.relative_to(PACKAGE).parts]


@pytest.mark.parametrize("path", outside_storage(), ids=lambda p: module_name(p))
def test_no_sql_is_built_outside_storage(path: Path) -> None:
    bad = []
    for line, module, name in imports(path):
        if module == TABLES or (module == "clientstats.storage" and name == "tables"):
            bad.append(f"{where(path, line)} imports the table definitions")
        elif module == "sqlalchemy" and name is None:
            bad.append(f"{where(path, line)} imports sqlalchemy whole (sqlalchemy.text & co)")
        elif module == "sqlalchemy" and name in SQL_BUILDERS:
            bad.append(f"{where(path, line)} imports sqlalchemy.{name}")
        elif module.startswith(SQL_MODULES):
            bad.append(f"{where(path, line)} imports {module}")
    assert bad == [], "SQL belongs in clientstats.storage"


HTTP_AND_CLI = [*modules(PACKAGE / "api"), PACKAGE / "cli.py"]


@pytest.mark.parametrize("path", HTTP_AND_CLI, ids=lambda p: module_name(p))
def test_http_and_cli_use_sqlalchemy_only_for_the_engine_type_and_errors(path: Path) -> None:
    bad = []
    for line, module, name in imports(path):
        if module == "sqlalchemy.exc":
            continue
        if module == "sqlalchemy" and name == "Engine":
            continue
        if module.split(".")[0] == "sqlalchemy":
            bad.append(f"{where(path, line)} imports {module}{'.' + name if name else ''}")
    assert bad == []


# Each layer may import only the layers it points to (STYLE.md: api/cli/worker -> services
# -> domain + storage); a module's own layer is always allowed. serving and supervisor run
# the API's processes: they stand beside cli and worker.
ENTRY_POINTS = ("api", "cli", "worker", "serving", "supervisor")
FORBIDDEN_LAYERS = {
    "storage": ("services", *ENTRY_POINTS, "cache"),
    "services": ENTRY_POINTS,
    "cache": ("services", *ENTRY_POINTS, "storage"),
}


def layered_modules() -> list[Path]:
    return [p for p in modules() if p.relative_to(PACKAGE).parts[0] in FORBIDDEN_LAYERS]


@pytest.mark.parametrize("path", layered_modules(), ids=lambda p: module_name(p))
def test_imports_point_down_the_layers(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    bad = []
    for line, module, _ in imports(path):
        parts = module.split(".")
        if parts[0] == "clientstats" and len(parts) > 1 and parts[1] in FORBIDDEN_LAYERS[layer]:
            bad.append(f"{where(path, line)} ({layer}) imports {module}")
    assert bad == []
