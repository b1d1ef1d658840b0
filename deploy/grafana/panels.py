"""The parts every shipped dashboard is made of: its data sources, a grid that lays panels out
left to right and top to bottom, panels and the dashboard around them, as Grafana's JSON model."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 40  # Grafana 11's dashboard model, the version compose.yaml runs
GRID_WIDTH = 24  # Grafana's grid has 24 columns

# The uids deploy/grafana/provisioning/datasources/llmgw.yaml gives its data sources.
PROMETHEUS = {"type": "prometheus", "uid": "llmgw-prometheus"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "llmgw-clickhouse"}

Json = dict[str, Any]


class Grid:
    """Places panels in rows: each one right of the last, on a new row when it does not fit."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0

    def place(self, width: int, height: int) -> Json:
        if not 0 < width <= GRID_WIDTH:
            raise ValueError(f"a panel is 1 to {GRID_WIDTH} columns wide, not {width}")
        if self.x + width > GRID_WIDTH:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        position = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.row_height = max(self.row_height, height)
        return position


def prometheus_target(ref_id: str, expr: str, legend: str) -> Json:
    return {"datasource": PROMETHEUS, "editorMode": "code", "expr": expr, "legendFormat": legend, "range": True, "refId": ref_id}


def clickhouse_target(ref_id: str, sql: str, time_series: bool) -> Json:
    """A raw-SQL query of the ClickHouse plugin; `time_series`: its rows are (time, labels..., values)
    series, else a table."""
    return {
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "format": 0 if time_series else 1,
        "queryType": "timeSeries" if time_series else "table",
        "rawSql": sql,
        "refId": ref_id,
    }


def panel(
    kind: str,
    title: str,
    description: str,
    datasource: Json,
    targets: list[Json],
    unit: str = "short",
    options: Json | None = None,
) -> Json:
    """A panel without its id and place (`dashboard` gives them)."""
    defaults: Json = {"unit": unit}
    if kind == "timeseries":
        defaults["custom"] = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
    }


def timeseries_options() -> Json:
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def stat_options() -> Json:
    return {
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "auto",
    }


def table_options() -> Json:
    return {"cellHeight": "sm", "showHeader": True}


def custom_variable(name: str, label: str, choices: list[int], default: int) -> Json:
    """A dashboard variable picked from fixed whole numbers (so it is safe inside SQL)."""
    if default not in choices:
        raise ValueError(f"variable {name}: default {default} is not among {choices}")
    values = [str(c) for c in choices]
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "current": {"selected": True, "text": str(default), "value": str(default)},
        "options": [{"selected": v == str(default), "text": v, "value": v} for v in values],
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "skipUrlSync": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[tuple[int, int, Json]],
    variables: list[Json] | None = None,
    time_from: str = "now-6h",
    refresh: str = "30s",
    hide_time_picker: bool = False,
) -> Json:
    """The dashboard of `panels`, each given as (width, height, panel): laid out in order, numbered
    from 1."""
    grid = Grid()
    placed = []
    for number, (width, height, body) in enumerate(panels, start=1):
        placed.append({"id": number, "gridPos": grid.place(width, height), **body})
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["llmgw"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "utc",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"hidden": hide_time_picker},
        "refresh": refresh,
        "annotations": {"list": []},
        "templating": {"list": variables or []},
        "links": [],
        "panels": placed,
    }
