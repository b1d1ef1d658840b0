"""The shipped Grafana dashboards: Grafana's dashboard model, data sources that are provisioned,
PromQL that parses and names llmgw's metrics, SQL that is a metering/sql file's own text, and
committed files that are the generator's output. (The SQL runs in tests/integration/
test_dashboard_sql.py; the metric names are held against live scrapes in tests/e2e/
test_dashboard_metrics.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deploy.grafana import build_dashboards, spend
from deploy.grafana.panels import GRID_WIDTH, Grid
from tests.dashboards import (
    DASHBOARD_DIR,
    ROOT,
    SQL_DIR,
    boards,
    clickhouse_queries,
    dashboard_files,
    load,
    metric_names,
    named_variables,
    prometheus_queries,
    provisioned_datasources,
    targets,
    variables,
)

pytestmark = pytest.mark.unit

# What the Operations dashboard is for: each of these is shown by some panel.
OPERATIONS_METRICS = {
    "llmgw_requests_total",
    "llmgw_request_duration_seconds_bucket",
    "llmgw_time_to_first_token_seconds_bucket",
    "llmgw_upstream_errors_total",
    "llmgw_refusals_total",
    "llmgw_jetstream_pending_messages",
    "llmgw_jetstream_redelivered_messages",
    "llmgw_edge_in_flight_requests",
    "llmgw_worker_in_flight_requests",
    "llmgw_metering_lag_seconds",
    "llmgw_clickhouse_insert_duration_seconds_bucket",
    "llmgw_key_map_last_update_timestamp_seconds",
    "llmgw_cooldown_active",
}
SPEND_FILES = {
    "spend_by_team_per_day.sql",
    "spend_by_key_per_day.sql",
    "spend_by_model_per_day.sql",
    "tokens_by_model.sql",
    "top_keys_by_spend.sql",
    "top_teams_by_spend.sql",
    "budget_burn_by_team.sql",
}


def test_the_two_dashboards_are_shipped_with_their_own_uids():
    found = {b["uid"]: b for b in boards()}
    assert set(found) == {"llmgw-operations", "llmgw-spend"}
    assert len(dashboard_files()) == 2
    titles = [b["title"] for b in found.values()]
    assert len(set(titles)) == 2 and all(titles)


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_a_dashboard_has_grafanas_fields_and_provisioned_data_sources(path: Path):
    board = load(path)
    assert isinstance(board["uid"], str) and 0 < len(board["uid"]) <= 40
    assert isinstance(board["title"], str) and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39
    uids = provisioned_datasources()
    panels = board["panels"]
    assert panels
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "table", "barchart", "gauge"}, panel["title"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and all(isinstance(v, int) and v >= 0 for v in grid.values())
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        source = panel["datasource"]
        assert source["uid"] in uids and uids[source["uid"]]["type"] == source["type"], panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
            assert target.get("expr") or target.get("rawSql"), panel["title"]


def test_the_data_sources_have_fixed_uids_and_the_clickhouse_password_comes_from_the_environment():
    sources = provisioned_datasources()
    assert {s["type"] for s in sources.values()} == {"prometheus", "grafana-clickhouse-datasource"}
    (prometheus,) = [s for s in sources.values() if s["type"] == "prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    (clickhouse,) = [s for s in sources.values() if s["type"] == "grafana-clickhouse-datasource"]
    settings = clickhouse["jsonData"]
    assert settings["host"] == "clickhouse" and settings["port"] == 8123 and settings["protocol"] == "http"
    assert settings["username"] and settings["defaultDatabase"] == "llmgw"
    assert re.fullmatch(r"\$\{[A-Z_]+\}", clickhouse["secureJsonData"]["password"])
    assert "password" not in settings


def test_the_dashboard_provider_reads_the_folder_compose_mounts():
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/llmgw.yaml").read_text())["providers"]
    (only,) = provider
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == only["options"]["path"]
    assert only["type"] == "file" and only["allowUiUpdates"] is False


def test_every_promql_expression_parses_and_names_llmgw_metrics():
    queries = prometheus_queries()
    assert len(queries) >= 20
    named: set[str] = set()
    for uid, title, expr in queries:
        assert "$" not in expr, (title, expr)
        names = metric_names(expr)
        assert names, (title, expr)
        assert all(n.startswith("llmgw_") for n in names), (title, names)
        named |= names
        assert uid == "llmgw-operations"
    assert named >= OPERATIONS_METRICS, OPERATIONS_METRICS - named


@pytest.mark.parametrize("broken", ["sum by (route (rate(llmgw_requests_total[1m]))", "rate(llmgw_requests_total)", "up{"])
def test_a_broken_promql_expression_is_caught(broken: str):
    with pytest.raises(ValueError):
        metric_names(broken)


def _file_sql(text: str) -> str:
    """A metering/sql file's text with its `{name:Type}` parameters as `${name}` variables."""
    return re.sub(r"\{(\w+):[^{}]+\}", r"${\1}", text)


def test_every_clickhouse_panel_runs_a_metering_sql_file_as_written():
    files = {_file_sql(p.read_text()): p.name for p in SQL_DIR.glob("*.sql")}
    used = set()
    queries = clickhouse_queries()
    assert queries
    for uid, panel, target in queries:
        assert target["rawSql"] in files, f"{panel['title']}: its SQL is no metering/sql file's text"
        used.add(files[target["rawSql"]])
        assert target["editorType"] == "sql"
        assert (target["format"], target["queryType"]) in {(0, "timeSeries"), (1, "table")}
        assert (panel["type"] == "timeseries") == (target["format"] == 0), panel["title"]
        (board,) = [b for b in boards() if b["uid"] == uid]
        assert named_variables(target["rawSql"]) <= set(variables(board)), panel["title"]
        assert named_variables(panel["title"]) <= set(variables(board)), panel["title"]
    assert used >= SPEND_FILES, SPEND_FILES - used


def test_the_spend_variables_are_whole_numbers_among_their_choices():
    (board,) = [b for b in boards() if b["uid"] == "llmgw-spend"]
    for variable in board["templating"]["list"]:
        assert variable["type"] == "custom" and not variable["includeAll"] and not variable["multi"]
        choices = variable["query"].split(",")
        assert all(c.isdigit() for c in choices) and variable["current"]["value"] in choices
        assert [o["value"] for o in variable["options"]] == choices


def test_a_parameter_that_is_not_a_whole_number_or_has_no_variable_is_refused():
    assert spend.grafana_sql("SELECT {days:UInt32} -- {days:UInt32}") == "SELECT ${days} -- ${days}"
    with pytest.raises(ValueError, match="whole-number"):
        spend.grafana_sql("SELECT {name:String}")
    with pytest.raises(ValueError, match="no variable 'weeks'"):
        spend.grafana_sql("SELECT {weeks:UInt32}")


def test_the_committed_dashboards_are_the_generators_output(tmp_path: Path):
    assert build_dashboards.stale() == [], "run python -m deploy.grafana.build_dashboards and commit its output"
    for name, text in build_dashboards.rendered().items():
        assert (DASHBOARD_DIR / name).read_text() == text
        json.loads(text)
    # the check the test relies on sees a difference
    assert build_dashboards.main(["--dir", str(tmp_path)]) == 0
    assert build_dashboards.main(["--check", "--dir", str(tmp_path)]) == 0
    edited = tmp_path / "spend.json"
    edited.write_text(edited.read_text().replace("${days}", "7", 1))
    assert build_dashboards.main(["--check", "--dir", str(tmp_path)]) == 1
    assert build_dashboards.stale(tmp_path) == ["spend.json"]


def test_the_grid_wraps_panels_that_do_not_fit():
    grid = Grid()
    assert grid.place(12, 8) == {"h": 8, "w": 12, "x": 0, "y": 0}
    assert grid.place(8, 4) == {"h": 4, "w": 8, "x": 12, "y": 0}
    assert grid.place(6, 4) == {"h": 4, "w": 6, "x": 0, "y": 8}
    with pytest.raises(ValueError):
        grid.place(25, 4)


def test_only_the_operations_dashboard_asks_prometheus_and_only_spend_asks_clickhouse():
    for board in boards():
        kinds = {t["datasource"]["type"] for p in board["panels"] for t in p["targets"]}
        expected = {"llmgw-operations": {"prometheus"}, "llmgw-spend": {"grafana-clickhouse-datasource"}}[board["uid"]]
        assert kinds == expected
        assert list(targets(board, expected.pop()))
