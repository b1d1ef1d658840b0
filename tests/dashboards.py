"""The shipped Grafana dashboards as the tests read them: their panels and queries, and each
query as Grafana would send it (its macros and variables given concrete values)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "llmgw.yaml"
SQL_DIR = ROOT / "metering" / "sql"

# Grafana's range macros of a PromQL query, as a 5-minute scrape window gives them.
PROMQL_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")

Board = dict[str, Any]


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load(path: Path) -> Board:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(board, dict), path
    return board


def boards() -> list[Board]:
    return [load(p) for p in dashboard_files()]


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    """The data sources Grafana is provisioned with, by uid."""
    spec = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    return {d["uid"]: d for d in spec["datasources"]}


def targets(board: Board, datasource_type: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) of every query of `board` asked of a data source of that type."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if target.get("datasource", panel.get("datasource", {})).get("type") == datasource_type:
                yield panel, target


def variables(board: Board) -> dict[str, str]:
    """The dashboard's variables and the value each one starts with."""
    return {v["name"]: str(v["current"]["value"]) for v in board.get("templating", {}).get("list", [])}


def named_variables(text: str) -> set[str]:
    """The names of the `$name` / `${name}` variables (and `$__macros`) a query uses."""
    return {a or b for a, b in _VARIABLE.findall(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    """`text` with each variable replaced by its value (KeyError for one not given)."""
    return _VARIABLE.sub(lambda m: values[m[1] or m[2]], text)


def concrete_promql(expr: str, board: Board) -> str:
    for macro, value in PROMQL_MACROS.items():
        expr = expr.replace(macro, value)
    return substitute(expr, variables(board))


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (ValueError if it does not parse)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def prometheus_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, concrete expression) of every Prometheus query."""
    return [
        (board["uid"], panel["title"], concrete_promql(target["expr"], board))
        for board in boards()
        for panel, target in targets(board, "prometheus")
    ]


def clickhouse_queries() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(dashboard uid, panel, target) of every ClickHouse query."""
    return [
        (board["uid"], panel, target) for board in boards() for panel, target in targets(board, "grafana-clickhouse-datasource")
    ]


def concrete_sql(board_uid: str, sql: str) -> str:
    """A panel's SQL as Grafana sends it, its variables at their starting values."""
    (board,) = [b for b in boards() if b["uid"] == board_uid]
    return substitute(sql, variables(board))
