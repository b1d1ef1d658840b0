"""The migrations as a replicated ClickHouse cluster gets them (LLMGW_CLICKHOUSE_CLUSTER)."""

from __future__ import annotations

import re

import pytest

from metering.migrate import MIGRATIONS_TABLE_DDL, load_migrations
from metering.on_cluster import on_cluster

pytestmark = pytest.mark.unit


def every_statement() -> list[str]:
    return [MIGRATIONS_TABLE_DDL] + [s for m in load_migrations() for s in m.statements]


def test_every_migration_statement_reaches_every_replica_with_a_replicated_engine():
    for statement in every_statement():
        rewritten = on_cluster(statement, "llmgw_cluster")
        head = re.match(r"(\s*--[^\n]*\n)*\s*(CREATE (TABLE|MATERIALIZED VIEW)( IF NOT EXISTS)?|ALTER TABLE) (\w+) ", rewritten)
        assert head, rewritten[:80]
        assert rewritten[head.end() :].startswith("ON CLUSTER 'llmgw_cluster'"), rewritten[:120]
        assert rewritten.count("ON CLUSTER") == 1
        for engine in re.findall(r"ENGINE\s*=\s*(\w+)", rewritten):
            assert engine.startswith("Replicated") and engine.endswith("MergeTree"), engine
        # Apart from those two changes, the statement is the file's.
        plain = rewritten.replace(" ON CLUSTER 'llmgw_cluster'", "").replace("ENGINE = Replicated", "ENGINE = ")
        assert re.sub(r"ENGINE\s*=\s*", "ENGINE = ", plain) == re.sub(r"ENGINE\s*=\s*", "ENGINE = ", statement)


def test_the_engines_and_statements_it_changes():
    assert on_cluster("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = SummingMergeTree ORDER BY x", "c") == (
        "CREATE TABLE IF NOT EXISTS t ON CLUSTER 'c' (x UInt8) ENGINE = ReplicatedSummingMergeTree ORDER BY x"
    )
    assert on_cluster("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO t AS SELECT 1", "c") == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS v ON CLUSTER 'c' TO t AS SELECT 1"
    )
    assert on_cluster("ALTER TABLE usage MODIFY TTL toDateTime(ts) + INTERVAL 30 DAY", "c") == (
        "ALTER TABLE usage ON CLUSTER 'c' MODIFY TTL toDateTime(ts) + INTERVAL 30 DAY"
    )
    already = "CREATE TABLE t (x UInt8) ENGINE = ReplicatedMergeTree ORDER BY x"
    assert on_cluster(already, "c") == "CREATE TABLE t ON CLUSTER 'c' (x UInt8) ENGINE = ReplicatedMergeTree ORDER BY x"
    insert = "INSERT INTO schema_migrations (version) VALUES (1)"
    assert on_cluster(insert, "c") == insert  # (a replicated table replicates its inserts)


@pytest.mark.parametrize("name", ["", "a b", "x'; DROP TABLE usage; --"])
def test_a_cluster_name_that_is_not_one_is_refused(name):
    with pytest.raises(ValueError):
        on_cluster("ALTER TABLE usage DROP COLUMN x", name)


def test_metering_takes_the_cluster_name_for_a_server_only():
    from llmgw.config import ConfigError
    from metering.settings import metering_settings_from_env

    server = "http://u:p@ch:8123/llmgw"
    assert metering_settings_from_env({"LLMGW_CLICKHOUSE_URL": server}).clickhouse_cluster == ""
    settings = metering_settings_from_env({"LLMGW_CLICKHOUSE_URL": server, "LLMGW_CLICKHOUSE_CLUSTER": "llmgw_cluster"})
    assert settings.clickhouse_cluster == "llmgw_cluster"
    with pytest.raises(ConfigError, match="LLMGW_CLICKHOUSE_CLUSTER"):
        metering_settings_from_env({"LLMGW_CLICKHOUSE_URL": "chdb:///tmp/x", "LLMGW_CLICKHOUSE_CLUSTER": "c"})
    with pytest.raises(ConfigError, match="LLMGW_CLICKHOUSE_CLUSTER"):
        metering_settings_from_env({"LLMGW_CLICKHOUSE_URL": server, "LLMGW_CLICKHOUSE_CLUSTER": "a b"})
