"""`GET /spend/reconciliation`: llmgw's metering against the providers' own usage and cost
reports, per provider, model and hour (proxy admins and viewers); and the admin keys those
reports are read with, `POST /spend/reconciliation/credentials` (sealed, proxy admins) and
`GET /spend/reconciliation/credentials` (masked).

The edge asks metering for the named queries (NamedQuery.RECONCILIATION, .STALE_PRICES); the
reconciler in metering reads the reports and keeps them in ClickHouse.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from nats.js.errors import KeyNotFoundError

from gateway.admin.common import admin, iso, json_response, viewer
from gateway.admin.params import bad_param, decode_body
from gateway.admin.spend import ask_metering, parse_date
from gateway.edge import Edge
from llmgw.contracts import (
    DEFAULT_DRIFT_THRESHOLD,
    RECONCILED_PROVIDERS,
    AdminCredentialRecord,
    NamedQuery,
    ReconcileLineKind,
    admin_credential_key,
)
from llmgw.kv import open_bucket
from llmgw.secrets import mask

DEFAULT_DAYS = 2  # yesterday and today
MAX_DAYS = 31
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(2105, 12, 31)  # what ClickHouse's DateTime holds
_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(AdminCredentialRecord)


class SetAdminKey(msgspec.Struct, kw_only=True):
    provider: str
    admin_key: str


def parse_threshold(value: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_DRIFT_THRESHOLD
    try:
        threshold = float(value)
    except ValueError:
        threshold = math.nan
    if not 0 <= threshold <= 1000:
        raise bad_param("threshold", f"`threshold` must be a relative drift from 0 to 1000 (0.02: 2 %); got {value!r}")
    return threshold


def reconciliation_window(start_date: str | None, end_date: str | None) -> tuple[datetime, datetime]:
    """UTC days, both ends included (default: yesterday and today); 400 naming the field if bad."""
    today = datetime.now(UTC).date()
    end = parse_date(end_date, "end_date") or today
    start = parse_date(start_date, "start_date") or end - timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise bad_param("end_date", f"`end_date` ({end}) is before `start_date` ({start})")
    for day, param in ((start, "start_date"), (end, "end_date")):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise bad_param(param, f"`{param}` must be a day from {FIRST_DAY} to {LAST_DAY}; got {day}")
    if (end - start).days >= MAX_DAYS:
        raise bad_param("start_date", f"a reconciliation covers at most {MAX_DAYS} days")
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return begin, datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)


def summary(lines: list[dict[str, Any]], outside: list[dict[str, Any]], stale: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {kind: 0 for kind in (ReconcileLineKind.OK, ReconcileLineKind.DRIFT, ReconcileLineKind.UNBILLED)}
    for line in lines:
        counts[line["kind"]] = counts.get(line["kind"], 0) + 1
    return {
        **counts,
        "outside": len(outside),
        "stale_prices": len(stale),
        "metered_cost": round(sum(line["metered_cost"] or 0.0 for line in lines), 9),
        "billed_cost": round(sum(line["billed_cost"] or 0.0 for line in lines), 9),
        "outside_cost": round(sum(line["billed_cost"] or 0.0 for line in outside), 9),
    }


def build_reconciliation_routes(edge: Edge) -> list:
    @get("/spend/reconciliation")
    async def reconciliation(
        request: Request,
        start_date: str | None = None,
        end_date: str | None = None,
        threshold: str | None = None,
        provider: str | None = None,
    ) -> Response:
        viewer(edge, request)
        start, end = reconciliation_window(start_date, end_date)
        if provider and provider not in RECONCILED_PROVIDERS:
            raise bad_param("provider", f"`provider` must be one of {', '.join(RECONCILED_PROVIDERS)}; got {provider!r}")
        parameters: dict[str, Any] = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "threshold": parse_threshold(threshold),
            "provider": provider or "",
        }
        rows = await ask_metering(edge, NamedQuery.RECONCILIATION, parameters)
        stale = await ask_metering(edge, NamedQuery.STALE_PRICES, parameters)
        lines = [r for r in rows if r["kind"] != ReconcileLineKind.OUTSIDE]
        outside = [r for r in rows if r["kind"] == ReconcileLineKind.OUTSIDE]
        return json_response({
            "start": start.isoformat().replace("+00:00", "Z"), "end": end.isoformat().replace("+00:00", "Z"),
            "threshold": parameters["threshold"], "summary": summary(lines, outside, stale),
            "lines": lines, "outside_traffic": outside, "stale_prices": stale,
        })  # fmt: skip

    @post("/spend/reconciliation/credentials", status_code=200)
    async def set_admin_key(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), SetAdminKey)
        if params.provider not in RECONCILED_PROVIDERS:
            raise bad_param("provider", f"`provider` must be one of {', '.join(RECONCILED_PROVIDERS)}; got {params.provider!r}")
        if not params.admin_key.strip():
            raise bad_param("admin_key", "`admin_key` must not be empty")
        record = AdminCredentialRecord(
            provider=params.provider,
            ciphertext=edge.cipher.encrypt(params.admin_key.strip()),
            masked=mask(params.admin_key.strip()),
            updated_at=time.time(),
        )
        kv = await open_bucket(edge.js, edge.subjects.settings_bucket)
        await kv.put(admin_credential_key(params.provider), _encoder.encode(record))
        return json_response({"provider": record.provider, "admin_key": record.masked})

    @get("/spend/reconciliation/credentials")
    async def list_admin_keys(request: Request) -> Response:
        viewer(edge, request)
        kv = await open_bucket(edge.js, edge.subjects.settings_bucket)
        out = []
        for provider in RECONCILED_PROVIDERS:
            try:
                record = _record_decoder.decode((await kv.get(admin_credential_key(provider))).value or b"")
            except KeyNotFoundError:
                continue
            out.append({"provider": provider, "admin_key": record.masked, "updated_at": iso(record.updated_at)})
        return json_response({"data": out})

    return [reconciliation, set_admin_key, list_admin_keys]
