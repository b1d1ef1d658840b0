"""Metering's pure parts: settings, usage rows, migration files, query result values."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address
from pathlib import Path
from uuid import UUID

import msgspec
import pytest

from llmgw.config import ConfigError
from llmgw.contracts import UsageEvent
from metering.engine_options import EngineSizing
from metering.migrate import load_migrations, split_statements
from metering.query_service import json_value
from metering.rows import NOT_STORED, USAGE_COLUMNS, ts_datetime, usage_problem, usage_row
from metering.settings import metering_settings_from_env, redact_dsn

pytestmark = pytest.mark.unit


def event(**overrides) -> UsageEvent:
    fields = dict(
        request_id="req-1",
        ts=1763900000.123,
        key_hash="kh",
        operation="chat",
        model_group="gpt-4",
        deployment_id="dep",
        provider="openai",
        upstream_model="gpt-4o",
        latency_ms=12.5,
        status="success",
        http_status=200,
        usage_source="provider",
        stream=False,
    )
    return UsageEvent(**{**fields, **overrides})


# ------------------------------------------------------------------------------------- settings


def test_settings_defaults_put_chdb_in_the_state_dir(tmp_path: Path) -> None:
    settings = metering_settings_from_env({"LLMGW_STATE_DIR": str(tmp_path)})
    assert settings.clickhouse_url == f"chdb://{tmp_path}/clickhouse"
    assert (settings.batch_size, settings.flush_interval) == (1000, 1.0)
    assert (settings.usage_retention_days, settings.usage_ttl_days, settings.log_level) == (30, 0, "info")
    assert settings.bus.prefix == "llmgw"


def test_settings_default_state_dir_is_absolute() -> None:
    settings = metering_settings_from_env({})
    assert settings.clickhouse_url == f"chdb://{os.path.abspath('.llmgw')}/clickhouse"


def test_settings_read_every_variable() -> None:
    settings = metering_settings_from_env(
        {
            "LLMGW_NATS_URL": "nats://n:4222",
            "LLMGW_BUS_PREFIX": "pfx",
            "LLMGW_CLICKHOUSE_URL": "http://u:p@ch:8123/db",
            "LLMGW_METERING_BATCH_SIZE": "50",
            "LLMGW_METERING_FLUSH_INTERVAL": "0.25",
            "LLMGW_USAGE_RETENTION_DAYS": "7",
            "LLMGW_USAGE_TTL_DAYS": "90",
            "LLMGW_LOG_LEVEL": "debug",
        }
    )
    assert (settings.bus.nats_url, settings.bus.prefix) == ("nats://n:4222", "pfx")
    assert settings.clickhouse_url == "http://u:p@ch:8123/db"
    assert (settings.batch_size, settings.flush_interval) == (50, 0.25)
    assert (settings.usage_retention_days, settings.usage_ttl_days, settings.log_level) == (7, 90, "debug")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LLMGW_METERING_BATCH_SIZE", "0", "LLMGW_METERING_BATCH_SIZE"),
        ("LLMGW_METERING_BATCH_SIZE", "many", "whole number"),
        ("LLMGW_METERING_FLUSH_INTERVAL", "0", "LLMGW_METERING_FLUSH_INTERVAL"),
        ("LLMGW_USAGE_RETENTION_DAYS", "-1", "LLMGW_USAGE_RETENTION_DAYS"),
        ("LLMGW_USAGE_TTL_DAYS", "-3", "LLMGW_USAGE_TTL_DAYS"),
        ("LLMGW_LOG_LEVEL", "loud", "LLMGW_LOG_LEVEL"),
        ("LLMGW_CLICKHOUSE_URL", "postgres://x", "LLMGW_CLICKHOUSE_URL"),
    ],
)
def test_bad_settings_say_which_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        metering_settings_from_env({name: value})


def test_the_embedded_engine_is_sized_for_the_cores_and_a_server_is_left_alone(tmp_path: Path) -> None:
    embedded = metering_settings_from_env({"LLMGW_STATE_DIR": str(tmp_path), "LLMGW_CHDB_CORES": "4"}).engine_options
    assert (embedded["max_threads"], embedded["background_pool_size"], embedded["threadpool_writer_pool_size"]) == ("4", "4", "8")
    assert embedded["uncompressed_cache_size"] == "0" and embedded["memory_worker_period_ms"] == "1000"
    assert metering_settings_from_env({"LLMGW_CLICKHOUSE_URL": "http://u:p@ch:8123/db"}).engine_options == {}


def test_one_core_still_gets_two_threads_for_merges() -> None:
    options = EngineSizing(cores=1, cache_mib=32, memory_mib=512).options()
    assert (options["max_threads"], options["background_pool_size"], options["max_thread_pool_free_size"]) == ("1", "2", "1")


def test_the_cache_budget_is_shared_and_the_memory_limit_taken_as_given() -> None:
    options = EngineSizing(cores=2, cache_mib=100, memory_mib=1000).options()
    caches = ("mark_cache_size", "primary_index_cache_size", "index_mark_cache_size", "query_condition_cache_size",
              "compiled_expression_cache_size")  # fmt: skip
    assert sum(int(options[c]) for c in caches) <= 100 * 1024 * 1024
    assert int(options["mark_cache_size"]) > int(options["primary_index_cache_size"]) > 0
    assert options["max_server_memory_usage"] == str(1000 * 1024 * 1024)


def test_named_engine_options_override_the_derived_ones() -> None:
    options = metering_settings_from_env({"LLMGW_CHDB_OPTIONS": "max_threads=7&mark_cache_size=1048576"}).engine_options
    assert (options["max_threads"], options["mark_cache_size"]) == ("7", "1048576")


@pytest.mark.parametrize(
    ("name", "value"),
    [("LLMGW_CHDB_CORES", "0"), ("LLMGW_CHDB_CACHE_MB", "1"), ("LLMGW_CHDB_MAX_MEMORY_MB", "10"), ("LLMGW_CHDB_OPTIONS", "a")],
)
def test_bad_engine_sizing_says_which_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        metering_settings_from_env({name: value})


def test_a_bad_url_error_does_not_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        metering_settings_from_env({"LLMGW_CLICKHOUSE_URL": "ftp://admin:hunter2@ch/db"})
    assert "hunter2" not in str(info.value)


def test_redact_dsn() -> None:
    assert redact_dsn("http://admin:s3cret@ch.internal:8123/llmgw") == "http://admin:***@ch.internal:8123/llmgw"
    assert redact_dsn("http://ch:8123/db") == "http://ch:8123/db"
    assert redact_dsn("chdb:///var/lib/llmgw/clickhouse") == "chdb:///var/lib/llmgw/clickhouse"


# ------------------------------------------------------------------------------------------ rows


def test_columns_are_the_contract_fields_in_order() -> None:
    assert tuple(f for f in UsageEvent.__struct_fields__ if f not in NOT_STORED) == USAGE_COLUMNS
    row = usage_row(event(cost=0.29, user_id="u1"))
    assert len(row) == len(USAGE_COLUMNS)
    values = dict(zip(USAGE_COLUMNS, row, strict=True))
    assert values["request_id"] == "req-1" and values["user_id"] == "u1" and values["team_id"] is None
    assert values["cost"] == Decimal("0.29")
    assert values["ts"] == datetime(2025, 11, 23, 12, 13, 20, 123000, tzinfo=UTC)


def test_ts_is_exact_to_the_millisecond() -> None:
    assert ts_datetime(1763900000.123).microsecond == 123000
    assert ts_datetime(1763900000.9996) == datetime(2025, 11, 23, 12, 13, 21, tzinfo=UTC)
    assert ts_datetime(0.001) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=1)


def test_a_storable_event_has_no_problem() -> None:
    assert usage_problem(event(prompt_tokens=2**32 - 1, cost=123.456, http_status=599)) is None


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"request_id": ""}, "request_id"),
        ({"key_hash": ""}, "key_hash"),
        ({"ts": -1.0}, "ts"),
        ({"ts": float("nan")}, "ts"),
        ({"ts": 1763900000123.0}, "ts"),  # milliseconds by mistake
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"completion_tokens": 2**32}, "completion_tokens"),
        ({"http_status": 70000}, "http_status"),
        ({"attempt": -2}, "attempt"),
        ({"cost": float("inf")}, "cost"),
        ({"cost": 1e12}, "cost"),
    ],
)
def test_an_event_that_cannot_be_a_row_says_why(overrides: dict, problem: str) -> None:
    assert problem in (usage_problem(event(**overrides)) or "")


# ------------------------------------------------------------------------------------ migrations


def test_statements_split_at_line_ends_and_comment_chunks_are_dropped() -> None:
    sql = "-- header; not a statement end\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Memory;\n\nSELECT 1 ;  \n-- trailing\n"
    assert split_statements(sql) == [
        "-- header; not a statement end\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Memory",
        "SELECT 1",
    ]


def test_packaged_migrations_are_numbered_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "usage" and len(migrations[0].statements) == 1
    assert all(m.statements for m in migrations)


def test_every_usage_field_has_a_column_in_the_migrations() -> None:
    statements = [s for m in load_migrations() for s in m.statements]
    for name in UsageEvent.__struct_fields__:
        if name not in NOT_STORED:
            assert any(f"\n    {name} " in s or f"ADD COLUMN IF NOT EXISTS {name} " in s for s in statements), name


def test_a_misnamed_or_duplicate_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "2_b.sql").write_text("SELECT 2;")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "2_b.sql").unlink()
    (tmp_path / "0001_c.sql").write_text("SELECT 3;")
    with pytest.raises(ValueError, match="version 1"):
        load_migrations(tmp_path)


# --------------------------------------------------------------------------------- query values


def test_query_values_become_json() -> None:
    tokyo = timezone(timedelta(hours=9))
    values = [
        None,
        "s",
        True,
        3,
        2.5,
        2**64 + 1,
        datetime(2026, 1, 2, 12, 0, 0, 123000, tzinfo=UTC),
        datetime(2026, 1, 2, 21, 0, tzinfo=tokyo),
        datetime(2026, 1, 2, 3, 4, 5),
        date(2026, 1, 2),
        Decimal("0.290000000"),
        UUID("61f0c404-5cb3-11e7-907b-a6006ad3dba0"),
        IPv4Address("10.0.0.1"),
        (1, "a"),
        [Decimal("1.5"), None],
        {"k": date(2026, 1, 1)},
        b"raw",
    ]
    converted = [json_value(v) for v in values]
    assert converted == [
        None,
        "s",
        True,
        3,
        2.5,
        str(2**64 + 1),
        "2026-01-02T12:00:00.123000Z",
        "2026-01-02T12:00:00Z",
        "2026-01-02T03:04:05Z",
        "2026-01-02",
        0.29,
        "61f0c404-5cb3-11e7-907b-a6006ad3dba0",
        "10.0.0.1",
        [1, "a"],
        [1.5, None],
        {"k": "2026-01-01"},
        "raw",
    ]
    msgspec.json.encode(converted)  # every value encodes
