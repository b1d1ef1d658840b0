"""What bench/chaos.py checks once its load is over: usage rows per answered request, budgets,
reservations and rate-limit slots left behind, memory per process."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import msgspec
import nats
from nats.js.errors import NoKeysError

from llmgw.contracts import BudgetLedger, QueryRequest, RateWindow, Subjects, decode_query_result, encode_json

ID_CHUNK = 500  # request ids per usage query


@dataclass
class Outcome:
    """One request of the load, as its client saw it."""

    kind: str  # whole | streamed | messages | embeddings
    key: str  # plain | budget-<n> | limited
    sent_at: float  # seconds into the run
    status: int = 0  # 0: no HTTP answer (connection refused or reset, client timeout)
    request_id: str | None = None
    complete: bool = False  # a 200 whose body (or stream) ended as it should


@dataclass
class Check:
    name: str
    ok: bool
    figure: str


@dataclass
class Rows:
    """Usage rows per request id (every copy ClickHouse holds, not only the one FINAL keeps)."""

    copies: dict[str, int] = field(default_factory=dict)
    cost_by_key: dict[str, float] = field(default_factory=dict)  # key hash -> cost of its rows


async def query(nc: nats.NATS, prefix: str, sql: str, parameters: dict) -> list[list]:
    request = encode_json(QueryRequest(sql, parameters))
    result = decode_query_result((await nc.request(Subjects(prefix).metering_query, request, timeout=30)).data)
    if result.error:
        raise RuntimeError(result.error)
    return result.rows


async def usage_copies(nc: nats.NATS, prefix: str, ids: list[str]) -> dict[str, int]:
    copies: dict[str, int] = {}
    for i in range(0, len(ids), ID_CHUNK):
        rows = await query(
            nc,
            prefix,
            "SELECT request_id, count() FROM usage WHERE request_id IN {ids:Array(String)} GROUP BY request_id",
            {"ids": ids[i : i + ID_CHUNK]},
        )
        copies.update({str(r[0]): int(r[1]) for r in rows})
    return copies


async def wait_for_rows(nc: nats.NATS, prefix: str, ids: list[str], timeout_s: float) -> dict[str, int]:
    """Copies of each request's row, once all have landed or nothing more lands for a while."""
    deadline = time.monotonic() + timeout_s
    copies, last_seen, still_since = {}, -1, time.monotonic()
    while True:
        try:
            copies = await usage_copies(nc, prefix, ids)
        except Exception:  # metering restarting: ask again
            pass
        if len(copies) >= len(set(ids)) or time.monotonic() > deadline:
            return copies
        if len(copies) != last_seen:
            last_seen, still_since = len(copies), time.monotonic()
        elif time.monotonic() - still_since > 30:
            return copies
        await asyncio.sleep(1)


async def cost_by_key(nc: nats.NATS, prefix: str) -> dict[str, float]:
    rows = await query(nc, prefix, "SELECT key_hash, sum(cost) FROM usage FINAL GROUP BY key_hash", {})
    return {str(r[0]): float(r[1] or 0) for r in rows}


async def bucket_values(nc: nats.NATS, bucket: str, decoder: msgspec.json.Decoder) -> dict[str, object]:
    kv = await nc.jetstream().key_value(bucket)
    try:
        keys = await kv.keys()
    except NoKeysError:
        return {}
    out: dict[str, object] = {}
    for key in keys:
        try:
            entry = await kv.get(key)
            out[key] = decoder.decode(entry.value or b"")
        except Exception:
            continue
    return out


@dataclass
class Leftovers:
    live_reservations: int
    expired_reservations: int  # still written in a ledger, past their expiry (they no longer count)
    live_slots: int
    expired_slots: int
    latest_expiry: float  # epoch seconds: the last reservation or slot expiry seen


async def leftovers(nc: nats.NATS, prefix: str) -> Leftovers:
    subjects, now = Subjects(prefix), time.time()
    ledgers = await bucket_values(nc, subjects.budgets_bucket, msgspec.json.Decoder(BudgetLedger))
    windows = await bucket_values(nc, subjects.ratelimits_bucket, msgspec.json.Decoder(RateWindow))
    expiries = [r.expires_at for led in ledgers.values() for r in led.reservations.values()]  # type: ignore[attr-defined]
    slots = [at for w in windows.values() for at in w.slots.values()]  # type: ignore[attr-defined]
    return Leftovers(
        live_reservations=sum(1 for e in expiries if e > now),
        expired_reservations=sum(1 for e in expiries if e <= now),
        live_slots=sum(1 for e in slots if e > now),
        expired_slots=sum(1 for e in slots if e <= now),
        latest_expiry=max([*expiries, *slots], default=0.0),
    )


async def ledgers_of(nc: nats.NATS, prefix: str) -> dict[str, BudgetLedger]:
    values = await bucket_values(nc, Subjects(prefix).budgets_bucket, msgspec.json.Decoder(BudgetLedger))
    return {k: v for k, v in values.items() if isinstance(v, BudgetLedger)}


def rows_check(outcomes: list[Outcome], copies: dict[str, int]) -> list[Check]:
    """Every answered request (an HTTP status and its x-request-id) has exactly one usage row."""
    checks = []
    classes = (("200 answered", lambda s: s == 200), ("4xx refused", lambda s: 400 <= s < 500), ("5xx", lambda s: s >= 500))
    for label, picks in classes:
        ids = [o.request_id for o in outcomes if o.request_id and picks(o.status)]
        missing = sum(1 for i in ids if copies.get(i, 0) == 0)
        doubled = sum(1 for i in ids if copies.get(i, 0) > 1)
        figure = f"{len(ids)} requests: {len(ids) - missing - doubled} one row, {missing} none, {doubled} more than one"
        checks.append(Check(f"usage rows, {label}", missing == 0 and doubled == 0, figure))
    return checks
