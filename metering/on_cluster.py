"""Migrations for a replicated ClickHouse cluster (`LLMGW_CLICKHOUSE_CLUSTER`).

The migration files are written for one server. Given a cluster name (one of the server's
`remote_servers`), each statement is applied with `ON CLUSTER '<name>'`, so every replica gets
it, and each `MergeTree` family engine becomes its `Replicated` kin, without arguments: the
server's `default_replica_path` and `default_replica_name` (by default
`/clickhouse/tables/{uuid}/{shard}` and `{replica}`) say where in Keeper each table keeps its
replication log. One shard, replicated: metering writes to and reads from any replica.
"""

from __future__ import annotations

import re

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# The object a DDL statement names (after the comment lines leading it), right after which
# ClickHouse takes `ON CLUSTER`.
_DDL_OBJECT = re.compile(
    r"^((?:\s*--[^\n]*\n)*\s*(?:CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)|ALTER\s+TABLE|DROP\s+(?:TABLE|VIEW))"
    r"(?:\s+IF\s+(?:NOT\s+)?EXISTS)?\s+[\w.`\"]+)",
    re.IGNORECASE,
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?!Replicated)(\w*MergeTree)\b(\s*\(\s*\))?", re.IGNORECASE)


def valid_cluster_name(name: str) -> bool:
    return bool(_CLUSTER_NAME.match(name))


def on_cluster(statement: str, cluster: str) -> str:
    """`statement` for every replica of `cluster`: `ON CLUSTER` after the object it names (a
    statement of another kind, an INSERT, is left as it is) and replicated engines."""
    if not valid_cluster_name(cluster):
        raise ValueError(f"not a ClickHouse cluster name: {cluster!r}")
    statement, found = _DDL_OBJECT.subn(lambda m: f"{m[1]} ON CLUSTER '{cluster}'", statement, count=1)
    if not found:
        return statement
    return _ENGINE.sub(lambda m: f"ENGINE = Replicated{m[1]}", statement)
