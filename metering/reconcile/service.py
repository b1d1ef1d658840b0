"""The reconciler: a loop of the metering process that reads the providers' usage and cost
reports on a schedule, stores them (`provider_usage`, `provider_prices`), compares them with
what llmgw metered (the named queries of metering/reconcile/queries.py) and publishes an alert
(`Subjects.reconciliation_alert(kind)`, the alerts stream) for each line past the threshold:
drift, outside traffic, a stale price. An alert is published once per line (its message id
de-duplicates it in the stream; this process remembers those it sent).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import structlog
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError

from llmgw.contracts import (
    MSG_ID_HEADER,
    AdminCredentialRecord,
    NamedQuery,
    ReconcileLineKind,
    ReconciliationAlert,
    Subjects,
    admin_credential_key,
    encode_json,
)
from llmgw.kv import open_bucket
from llmgw.secrets import CredentialCipher
from metering.named_queries import named_query
from metering.reconcile.reports import READERS, ReportError
from metering.reconcile.rows import PROVIDER_PRICES_COLUMNS, PROVIDER_USAGE_COLUMNS, build_rows
from metering.reconcile.settings import ProviderReports, ReconcileSettings
from metering.store import UsageStore

log = structlog.get_logger()

REPORT_TIMEOUT = 60.0
ALERTED_KINDS = (ReconcileLineKind.DRIFT, ReconcileLineKind.UNBILLED, ReconcileLineKind.OUTSIDE)
_record_decoder = msgspec.json.Decoder(AdminCredentialRecord)


def window(now: datetime, lookback_hours: int) -> tuple[datetime, datetime]:
    """From the start of the UTC day `lookback_hours` back to the end of the current hour: whole
    days, as the cost reports count them, so a day's cost is shared over all of that day's tokens."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return (end - timedelta(hours=lookback_hours + 1)).replace(hour=0), end


def rows_as_dicts(columns: list[str], rows: Any) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


class Reconciler:
    def __init__(self, settings: ReconcileSettings, js: JetStreamContext, subjects: Subjects, store: UsageStore) -> None:
        self._settings = settings
        self._js = js
        self._subjects = subjects
        self._store = store
        self._cipher = CredentialCipher(settings.secret)
        self._alerted: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=REPORT_TIMEOUT) as client:
            while not stop.is_set():
                try:
                    await self.reconcile_once(client, datetime.now(UTC))
                except Exception as exc:
                    log.error("reconciliation_failed", error=str(exc) or type(exc).__name__, exc_info=True)
                try:
                    await asyncio.wait_for(stop.wait(), self._settings.interval)
                except TimeoutError:
                    pass

    async def reconcile_once(self, client: httpx.AsyncClient, now: datetime) -> int:
        """Read every provider's reports, store them, alert; return the alerts published."""
        start, end = window(now, self._settings.lookback_hours)
        for reports in self._settings.providers:
            await self._read(client, reports, start, end)
        return await self._alert(start, end, now)

    async def _admin_key(self, reports: ProviderReports) -> str | None:
        """The sealed key set with the admin API, else the one of the environment."""
        try:
            kv = await open_bucket(self._js, self._subjects.settings_bucket)
            entry = await kv.get(admin_credential_key(reports.provider))
            record = _record_decoder.decode(entry.value or b"")
        except KeyNotFoundError:
            record = None
        if record is not None:
            plaintext = self._cipher.decrypt(record.ciphertext)
            if plaintext is None:
                log.error("reconcile_admin_key_undecryptable", provider=reports.provider)
            else:
                return plaintext
        return reports.admin_key.reveal() if reports.admin_key is not None else None

    async def _read(self, client: httpx.AsyncClient, reports: ProviderReports, start: datetime, end: datetime) -> None:
        key = await self._admin_key(reports)
        if key is None:
            log.warning("reconcile_no_admin_key", provider=reports.provider)
            return
        try:
            usage, costs = await READERS[reports.provider](client, reports.api_base, key, start, end)
        except ReportError as exc:
            log.error("reconcile_report_failed", provider=reports.provider, error=str(exc).replace(key, "***"))
            return
        except (KeyError, TypeError, ValueError) as exc:  # a page whose buckets are not what the reference says
            log.error("reconcile_report_unreadable", provider=reports.provider, error=f"{type(exc).__name__}: {exc}")
            return
        usage_rows, price_rows = build_rows(usage, costs, reports.key_ids, datetime.now(UTC).replace(tzinfo=None))
        await asyncio.to_thread(self._store.insert_rows, "provider_usage", PROVIDER_USAGE_COLUMNS, usage_rows)
        await asyncio.to_thread(self._store.insert_rows, "provider_prices", PROVIDER_PRICES_COLUMNS, price_rows)
        log.info("reconcile_reports_read", provider=reports.provider, usage_rows=len(usage_rows), price_rows=len(price_rows))

    async def _ask(self, name: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        parameters = {"start": start.isoformat(), "end": end.isoformat(), "threshold": self._settings.threshold}
        sql, bound = named_query(name, parameters)
        columns, rows = await asyncio.to_thread(self._store.query, sql, bound)
        return rows_as_dicts(columns, rows)

    async def _alert(self, start: datetime, end: datetime, now: datetime) -> int:
        settled = now - timedelta(minutes=self._settings.alert_delay_minutes)
        alerts: list[tuple[str, ReconciliationAlert]] = []
        for line in await self._ask(NamedQuery.RECONCILIATION, start, end):
            hour_end = datetime.fromisoformat(line["hour"].replace("Z", "+00:00")) + timedelta(hours=1)
            if line["kind"] not in ALERTED_KINDS or hour_end > settled:
                continue
            metered = int(line["metered_input_tokens"]) + int(line["metered_output_tokens"])
            billed = int(line["billed_input_tokens"]) + int(line["billed_output_tokens"])
            alert = ReconciliationAlert(
                kind=line["kind"], provider=line["provider"], model=line["model"], hour=line["hour"],
                account=line["account"], metered_tokens=metered, billed_tokens=billed,
                metered_cost=line["metered_cost"], billed_cost=line["billed_cost"],
                drift_relative=line["token_drift_relative"], threshold=self._settings.threshold, ts=time.time(),
            )  # fmt: skip
            alerts.append(
                (f"reconcile.{line['kind']}.{line['provider']}.{line['model']}.{line['hour']}.{line['account']}", alert)
            )
        for price in await self._ask(NamedQuery.STALE_PRICES, start, end):
            alert = ReconciliationAlert(
                kind=ReconcileLineKind.STALE_PRICE, provider=price["provider"], model=price["model"], hour=price["day"],
                account=price["token_type"], drift_relative=price["difference_relative"],
                threshold=self._settings.threshold, ts=time.time(),
            )  # fmt: skip
            alerts.append((f"reconcile.stale.{price['provider']}.{price['model']}.{price['token_type']}.{price['day']}", alert))
        sent = 0
        for msg_id, alert in alerts:
            if msg_id in self._alerted:
                continue
            await self._js.publish(
                self._subjects.reconciliation_alert(alert.kind), encode_json(alert), headers={MSG_ID_HEADER: msg_id}
            )
            self._alerted.add(msg_id)
            sent += 1
            log.warning(
                "reconciliation_alert",
                kind=alert.kind,
                provider=alert.provider,
                model=alert.model,
                hour=alert.hour,
                account=alert.account,
                drift_relative=alert.drift_relative,
            )
        return sent
