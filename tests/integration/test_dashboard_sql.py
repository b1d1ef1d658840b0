"""Every ClickHouse panel of the shipped dashboards runs: its SQL, its variables given the values
the dashboard starts with, against a chdb database with every migration applied and a few usage
rows stored, so each table and column it names exists and it answers rows of the shape its panel
draws."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dashboards import ROOT, clickhouse_queries, concrete_sql

pytestmark = pytest.mark.integration

BROKEN = "SELECT day, no_such_column FROM spend_daily"
TIME_TYPES = {"date", "datetime"}


def run(queries: list[str], directory: Path) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.chdb_queries", str(directory)],
        input=json.dumps(queries),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each panel's title and what its query answered, the broken query's answer under ""."""
    panels = [(panel["title"], concrete_sql(uid, target["rawSql"])) for uid, panel, target in clickhouse_queries()]
    assert panels and len({title for title, _ in panels}) == len(panels)
    answers = run([sql for _, sql in panels] + [BROKEN], tmp_path_factory.mktemp("dashboard-sql"))
    assert len(answers) == len(panels) + 1
    return {**{title: answer for (title, _), answer in zip(panels, answers[:-1], strict=True)}, "": answers[-1]}


def test_every_clickhouse_panel_query_runs_and_answers_rows(results: dict[str, dict]) -> None:
    for title, answer in results.items():
        if title:
            assert "error" not in answer, f"{title}: {answer.get('error')}"
            assert answer["rows"] > 0 and answer["columns"], title


def test_a_chart_gets_time_first_then_labels_and_values(results: dict[str, dict]) -> None:
    charts = [(panel, target) for _, panel, target in clickhouse_queries() if target["format"] == 0]
    assert charts
    for panel, _ in charts:
        answer = results[panel["title"]]
        assert answer["types"][0] in TIME_TYPES, (panel["title"], answer)
        assert answer["types"][-1] in {"Decimal", "float", "int"}, (panel["title"], answer)
        assert "str" in answer["types"][1:-1], (panel["title"], answer)


def test_a_query_naming_a_missing_column_is_caught(results: dict[str, dict]) -> None:
    assert "no_such_column" in results[""]["error"]
