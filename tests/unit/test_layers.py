"""The house's layers, read from the imports of every product module (lazy ones included):
`llmgw/` below everything, the edge, the workers and metering side by side, `llmgw_cli` above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("gateway", "workers", "metering")
# package -> the packages of the product it may not import
FORBIDDEN = {
    "llmgw": {"gateway", "workers", "metering", "llmgw_cli"},
    "gateway": {"workers", "metering", "llmgw_cli"},
    "workers": {"gateway", "metering", "llmgw_cli"},
    "metering": {"gateway", "workers", "llmgw_cli"},
    "llmgw_cli": set(),
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_import_runs_up_a_layer_or_across_components():
    wrong = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in sorted(imported_packages(path) & forbidden):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_only_the_command_line_imports_every_component():
    together = []
    for package in FORBIDDEN:
        imported = set().union(*(imported_packages(p) for p in (ROOT / package).rglob("*.py")))
        if set(COMPONENTS) <= imported | {package}:
            together.append(package)
    assert together == ["llmgw_cli"]
