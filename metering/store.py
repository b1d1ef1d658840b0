"""The ClickHouse side of metering: the `usage` table and read-only queries.

Works the same on an embedded chdb data directory and on a ClickHouse server; the DSN decides.
The client is synchronous: callers run these methods in a thread (`asyncio.to_thread`), and a
lock makes sure only one call reaches ClickHouse at a time.

Two clients share the store: a writer (migrations, inserts) and a reader whose session is
`readonly = 2` (reads and settings only). A per-query `readonly` setting cannot be used on chdb:
the driver applies per-query settings with SET and cannot restore `readonly` afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from llmgw.contracts import UsageEvent
from metering.migrate import apply_usage_ttl, load_migrations, migrate
from metering.rows import USAGE_COLUMNS, ts_datetime, usage_row

# Days are UTC days everywhere (today(), toDate(now())), whatever the host's timezone.
SESSION_SETTINGS = {"session_timezone": "UTC"}
READER_SETTINGS = {**SESSION_SETTINGS, "readonly": 2, "max_execution_time": 60}

_EXISTING_IDS = """
SELECT DISTINCT request_id FROM usage
WHERE key_hash IN {keys:Array(String)}
  AND ts BETWEEN {lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')}
  AND request_id IN {ids:Array(String)}
"""
_TS_MARGIN = timedelta(seconds=1)  # the id check must not miss a row to a rounding of ts


class UsageStore:
    def __init__(self, writer: Client, reader: Client) -> None:
        self._writer = writer
        self._reader = reader
        self._lock = threading.Lock()

    @classmethod
    def open(cls, dsn: str, engine_options: Mapping[str, str] | None = None) -> UsageStore:
        """`engine_options`: start-up options of an embedded (chdb) engine, ignored for a server."""
        extra: dict[str, Any] = {}
        if engine_options and dsn.startswith("chdb:"):
            # The first connection starts the engine with them; `max_threads` is per connection.
            extra["chdb_options"] = dict(engine_options)
        writer = clickhouse_connect.get_client(dsn=dsn, settings=SESSION_SETTINGS, **extra)
        try:
            # tz_mode="aware": every datetime read carries its zone, so it converts to UTC exactly.
            reader = clickhouse_connect.get_client(dsn=dsn, settings=READER_SETTINGS, tz_mode="aware", **extra)
        except BaseException:
            writer.close()
            raise
        return cls(writer, reader)

    def migrate(self, usage_ttl_days: int, cluster: str = "") -> list[str]:
        """Apply pending migrations and the usage TTL (on every replica of `cluster`, if given);
        return the names of the migrations applied."""
        with self._lock:
            applied = migrate(self._writer, load_migrations(), cluster)
            apply_usage_ttl(self._writer, usage_ttl_days, cluster)
        return [f"{m.version:04d}_{m.name}" for m in applied]

    def insert_usage(self, events: Sequence[UsageEvent]) -> int:
        """Insert each request_id not stored yet (once, even if `events` repeats it); return how many.

        Dropping ids already in `usage` before the insert keeps the rollup views exact: they see
        every insert, duplicates included, before any merge could collapse them.
        """
        return self.insert_fresh(self.fresh_events(events))

    def fresh_events(self, events: Sequence[UsageEvent]) -> list[UsageEvent]:
        """The events whose request_id is not in `usage` yet: the first of each id, in order."""
        unique: dict[str, UsageEvent] = {}
        for event in events:
            unique.setdefault(event.request_id, event)
        if not unique:
            return []
        with self._lock:
            existing = self._existing_ids(list(unique.values()))
        return [e for e in unique.values() if e.request_id not in existing]

    def insert_fresh(self, events: Sequence[UsageEvent]) -> int:
        """Insert events `fresh_events` returned (one process writes a store's usage rows)."""
        if not events:
            return 0
        with self._lock:
            self._writer.insert("usage", [usage_row(e) for e in events], column_names=list(USAGE_COLUMNS))
        return len(events)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
        """Insert rows of one of metering's other tables (the reconciler's `provider_usage`, ...)."""
        if not rows:
            return 0
        with self._lock:
            self._writer.insert(table, [list(r) for r in rows], column_names=list(columns))
        return len(rows)

    def _existing_ids(self, events: list[UsageEvent]) -> set[str]:
        times = [ts_datetime(e.ts) for e in events]
        result = self._writer.query(
            _EXISTING_IDS,
            parameters={
                "keys": sorted({e.key_hash for e in events}),
                "lo": min(times) - _TS_MARGIN,
                "hi": max(times) + _TS_MARGIN,
                "ids": [e.request_id for e in events],
            },
        )
        return {row[0] for row in result.result_rows}

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> tuple[list[str], Sequence[Sequence[object]]]:
        """Run a read-only query; writes are refused by ClickHouse (READONLY)."""
        sql = sql.strip().rstrip(";")
        with self._lock:
            result = self._reader.query(sql, parameters=dict(parameters) if parameters else None)
        return list(result.column_names), result.result_rows

    def close(self) -> None:
        with self._lock:
            self._reader.close()
            self._writer.close()
