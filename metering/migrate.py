"""Schema migrations: numbered `.sql` files applied in order, each exactly once.

`migrations/NNNN_name.sql` holds one or more statements, each ended by a `;` at the end of a
line. A migration is recorded in `schema_migrations` after all its statements ran; ClickHouse
has no transactions, so every statement is written to be re-runnable (`IF NOT EXISTS`) and a
migration interrupted half-way is simply applied again. Applied files are never edited: a
change is a new file.

The usage TTL is a setting, not a migration: `apply_usage_ttl` brings the table to it.
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

import msgspec
import structlog
from clickhouse_connect.driver.client import Client

from metering.on_cluster import on_cluster

log = structlog.get_logger()

MIGRATIONS_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""

_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)
_USAGE_TTL = re.compile(r"\bTTL toDateTime\(ts\) \+ toIntervalDay\((\d+)\)")


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    statements: list[str]


def split_statements(sql: str) -> list[str]:
    """The statements of a migration file: split where a line ends with `;`."""
    chunks = (chunk.strip() for chunk in _STATEMENT_END.split(sql))
    return [chunk for chunk in chunks if _COMMENT_LINE.sub("", chunk).strip()]


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """Every migration in `directory` (the package's `migrations/` by default), by version."""
    directory = directory or files("metering") / "migrations"
    found: dict[int, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if not match:
            raise ValueError(f"migration file {entry.name!r}: expected NNNN_name.sql")
        version = int(match[1])
        if version in found:
            raise ValueError(f"migration version {version} is used by two files")
        found[version] = Migration(version, match[2], split_statements(entry.read_text(encoding="utf-8")))
    return [found[v] for v in sorted(found)]


def migrate(client: Client, migrations: list[Migration], cluster: str = "") -> list[Migration]:
    """Apply the migrations not yet recorded, in order; return the ones applied now. With a
    `cluster`, on every replica of it, with replicated engines (`metering/on_cluster.py`)."""
    client.command(on_cluster(MIGRATIONS_TABLE_DDL, cluster) if cluster else MIGRATIONS_TABLE_DDL)
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        for statement in migration.statements:
            client.command(on_cluster(statement, cluster) if cluster else statement)
        client.command(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({version:UInt32}, {name:String}, now64(3))",
            parameters={"version": migration.version, "name": migration.name},
        )
        log.info("migration_applied", version=migration.version, name=migration.name)
        done.append(migration)
    return done


def current_usage_ttl_days(client: Client) -> int:
    """The row TTL of `usage` in days as `apply_usage_ttl` sets it, 0 when it has none."""
    result = client.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'usage'")
    match = _USAGE_TTL.search(result.result_rows[0][0]) if result.result_rows else None
    return int(match[1]) if match else 0


def apply_usage_ttl(client: Client, days: int, cluster: str = "") -> bool:
    """Make rows of `usage` expire `days` after their `ts` (0: never); True if it changed."""
    if current_usage_ttl_days(client) == days:
        return False
    statement = (
        f"ALTER TABLE usage MODIFY TTL toDateTime(ts) + INTERVAL {int(days)} DAY" if days else "ALTER TABLE usage REMOVE TTL"
    )
    client.command(on_cluster(statement, cluster) if cluster else statement)
    log.info("usage_ttl_changed", days=days)
    return True
