"""The Spend dashboard: the saved queries of metering/sql as ClickHouse panels.

A panel's SQL is its file's text with each `{name:Type}` parameter replaced by the dashboard
variable of that name (`${name}`), so the files stay the one source of the SQL: `llmgw sql FILE`
and the dashboard ask ClickHouse the same thing.
"""

from __future__ import annotations

import re
from pathlib import Path

from deploy.grafana.panels import (
    CLICKHOUSE,
    Json,
    clickhouse_target,
    custom_variable,
    dashboard,
    panel,
    table_options,
    timeseries_options,
)

UID = "llmgw-spend"
SQL_DIR = Path(__file__).resolve().parents[2] / "metering" / "sql"

_PARAMETER = re.compile(r"\{(\w+):([^{}]+)\}")
# The parameter types a dashboard variable stands for as it is: whole numbers, picked from fixed
# choices, so the text Grafana puts in the SQL is a number.
_NUMBER_TYPES = frozenset({"UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64"})

VARIABLES = [
    custom_variable("days", "Days", [1, 7, 30, 90], 30),
    custom_variable("hours", "Hours", [6, 24, 72, 168], 24),
    custom_variable("limit", "Top", [5, 10, 20, 50], 10),
    custom_variable("drift_percent", "Drift %", [1, 2, 5, 10], 2),
]


def grafana_sql(text: str) -> str:
    """A saved query's text for a panel: its `{name:Type}` parameters as `${name}` variables."""
    known = {v["name"] for v in VARIABLES}

    def variable(match: re.Match[str]) -> str:
        name, kind = match[1], match[2].strip()
        if kind not in _NUMBER_TYPES:
            raise ValueError(f"parameter {{{name}:{kind}}}: only whole-number parameters can be dashboard variables")
        if name not in known:
            raise ValueError(f"parameter {{{name}:{kind}}}: the spend dashboard has no variable {name!r}")
        return "${" + name + "}"

    return _PARAMETER.sub(variable, text)


def query_panel(kind: str, title: str, description: str, sql_file: str, unit: str = "short") -> Json:
    """A panel showing the rows of metering/sql/`sql_file`: a chart of series (`kind` timeseries)
    or a table."""
    sql = grafana_sql((SQL_DIR / sql_file).read_text(encoding="utf-8"))
    chart = kind == "timeseries"
    options = timeseries_options() if chart else table_options()
    return panel(kind, title, description, CLICKHOUSE, [clickhouse_target("A", sql, chart)], unit, options)


def panels() -> list[tuple[int, int, Json]]:
    return [
        (
            24,
            9,
            query_panel(
                "timeseries",
                "Spend by model group per day (last $days days)",
                "US dollars by model group, per UTC day.",
                "spend_by_model_per_day.sql",
                "currencyUSD",
            ),
        ),
        (
            12,
            9,
            query_panel(
                "timeseries",
                "Budget burn by team (last $hours hours)",
                "Each team's spend added up hour by hour: the steeper the line, the sooner its budget is gone.",
                "budget_burn_by_team.sql",
                "currencyUSD",
            ),
        ),
        (
            12,
            9,
            query_panel(
                "table",
                "Top teams by spend (last $days days)",
                "The teams that spent the most, with their share of all teams' spend.",
                "top_teams_by_spend.sql",
            ),
        ),
        (
            12,
            9,
            query_panel(
                "table",
                "Top keys by spend (last $days days)",
                "The keys that spent the most, with their latest alias.",
                "top_keys_by_spend.sql",
            ),
        ),
        (
            12,
            9,
            query_panel(
                "table",
                "Spend by key per day (last $days days)",
                "Requests, tokens and US dollars of each key per UTC day.",
                "spend_by_key_per_day.sql",
            ),
        ),
        (
            12,
            9,
            query_panel(
                "table",
                "Spend by team per day (last $days days)",
                "Requests, errors, tokens and US dollars of each team per UTC day.",
                "spend_by_team_per_day.sql",
            ),
        ),
        (
            12,
            9,
            query_panel(
                "table",
                "Tokens and spend by model group per day (last $days days)",
                "Requests, tokens by kind, US dollars and unpriced requests of each model group per UTC day.",
                "tokens_by_model.sql",
            ),
        ),
        (
            24,
            9,
            query_panel(
                "table",
                "Spend by tag per day (last $days days)",
                "Requests, tokens and US dollars of each request tag per UTC day (a request counts for each of its tags).",
                "spend_by_tag_per_day.sql",
            ),
        ),
        (
            24,
            10,
            query_panel(
                "table",
                "Reconciliation with the providers' reports (last $days days, drift over $drift_percent %)",
                "What llmgw metered against what each provider billed (its usage and cost reports, read by metering's"
                " reconciler), per provider, model and hour: ok, drift, unbilled, or outside (billed, never sent"
                " through llmgw).",
                "reconciliation_by_hour.sql",
            ),
        ),
    ]


def build() -> Json:
    # The panels read their own spans (the days, hours and top-N variables), not the time picker.
    return dashboard(
        UID,
        "llmgw / Spend",
        "Spend by team, key, model group, tag and day, top spenders, budget burn and the reconciliation with the"
        " providers' reports, from the usage rows in ClickHouse.",
        panels(),
        VARIABLES,
        time_from="now-30d",
        refresh="5m",
        hide_time_picker=True,
    )
