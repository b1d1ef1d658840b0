"""A batch handed to the provider's own batch API instead of run line by line (at the provider's
batch price: half of OpenAI's normal price).

Which batches: a `/v1/chat/completions` batch whose lines all name one model group, when the
deployment the router picks for it opts in with `litellm_params.batch_api: provider` (an OpenAI
deployment; any other batch runs line by line as before). The edge never calls a provider: it
asks a worker of the deployment's provider (`Subjects.provider_batch`, one of a queue group) to
submit, poll and read the results (workers/provider_batches.py).

What survives a restart (the runner holds the batch's lease as for any batch):
- before the submit, a claim is written into the batch's record (`handoff_deployment`,
  `handoff_claim`) by compare-and-set; the provider's batch id is recorded right after the submit,
  before the first poll. An edge that takes the batch over and finds the id polls it; finding a
  claim without an id (the edge died during the submit: the provider may have the batch) it never
  submits again: it looks for the provider's batch made for it (OpenAI's carries the gateway's
  batch id in its metadata) and follows it; not found once the submit cannot be on its way any
  more (or on Anthropic, whose batches have no metadata), the lines end in the error file as
  `batch_handoff_interrupted`;
- the results are metered by the worker (one usage row per line, ids derived from the line, so
  a second read is still one row), then written as the lines' records; the runner's `finish`
  writes the output and error files from them, with the gateway's custom ids and line ids.
Budgets: each line's row carries the caller's ledgers (as the edge's admission computes them),
so metering settles its batch-priced cost into them; no reservation is held while it runs.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec
import structlog
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from gateway.batches.finish import BatchRun
from gateway.batches.store import BatchStore
from gateway.batches.wire import error_line, response_line
from gateway.budgets import beyond, covering
from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from llmgw.contracts import (
    BatchLine,
    BatchRecord,
    BatchStatus,
    Caller,
    LedgerRef,
    LineState,
    ProviderBatchAnswer,
    ProviderBatchCall,
    ProviderBatchOp,
    ProviderBatchState,
    ProviderLineResult,
    decode_provider_batch_answer,
    encode_provider_batch,
)

if TYPE_CHECKING:
    from gateway.edge import Edge

log = structlog.get_logger()

KeptApart = Callable[[str, int, BatchLine], Awaitable[BatchLine]]

OPT_IN = ("batch_api", "provider")  # litellm_params.batch_api: provider
FAMILIES = ("openai", "anthropic")  # the adapter families whose batch API the workers speak
CALL_TIMEOUT = 120.0  # seconds a worker has for a submit (the upload) or a read of the results
POLL_TIMEOUT = 30.0
SUBMIT_GRACE = 30.0  # seconds past CALL_TIMEOUT a submit cut short may still reach the provider
PAGE_MARGIN = 64 * 1024  # bytes of a results page's NATS message kept for what is not the lines' answers
NO_WORKER_WAIT = 1.0  # seconds before asking again when no worker of the provider listens
INTERRUPTED = (
    "The gateway restarted while it handed this batch to the provider; it was not submitted again (the provider may have run it)."
)

_decoder = msgspec.json.Decoder()


def opted_in(edge: Edge, record: BatchRecord, run: BatchRun) -> Deployment | None:
    """The deployment a batch goes to, when it is handed off; None: it runs line by line."""
    if record.endpoint != "/v1/chat/completions" or not run.lines:
        return None
    models = {line.body.get("model") for line in run.lines}
    if len(models) != 1:
        return None
    model = models.pop()
    if not isinstance(model, str):
        return None
    try:
        deployment = edge.router.pick(model)
    except Exception:
        return None
    if deployment.option(OPT_IN[0]) != OPT_IN[1] or PROVIDERS[deployment.provider].family not in FAMILIES:
        return None
    return deployment


class Handoff:
    def __init__(self, edge: Edge, store: BatchStore, owner: str, kept_apart: KeptApart) -> None:
        self.edge = edge
        self.store = store
        self.owner = owner
        self.kept_apart = kept_apart  # a result too large for a KV record goes to the files object store
        self.poll_seconds = edge.settings.provider_batch_poll_seconds

    async def run(self, run: BatchRun, stopping: asyncio.Event) -> bool:
        """Hand the batch off (or go on with one handed off before): True when it is the provider's
        (its lines are then in `run.done` unless the run stopped); False: run it line by line."""
        record = run.record
        if record.handoff_deployment is None:
            if run.done:  # (lines already ran here: it stays line by line)
                return False
            deployment = opted_in(self.edge, record, run)
            if deployment is None or await self._budgeted(run):
                return False  # (line by line: each line reserves against the budget)
            claim = f"{self.owner}@{time.time():.3f}"
            claimed = await self._claim(run, deployment, claim)
            if claimed is None or claimed.handoff_claim != claim:
                return claimed is not None and claimed.handoff_deployment is not None
            if not await self._submit(run, deployment, stopping):
                return True
        elif record.provider_batch_id is None and not await self._recover(run):
            return True  # (claimed, never recorded: never submitted again; looked for at the next look)
        deployment = self.edge.deployment(run.record.handoff_deployment or "")
        if deployment is None:
            await self._all_failed(run, "batch_handoff_failed", "The batch's deployment no longer exists.")
            return True
        await self._follow(run, deployment, stopping)
        return True

    async def _recover(self, run: BatchRun) -> bool:
        """A claim without a provider id (its edge died during the submit): the provider's batch
        made for it is looked for (OpenAI: by its metadata) and recorded, True; while the submit may
        still be on its way it is looked for again later; past that (or where batches cannot be
        found) the lines end as `batch_handoff_interrupted`. Never submitted a second time."""
        record = run.record
        deployment = self.edge.deployment(record.handoff_deployment or "")
        if deployment is None:
            await self._all_failed(run, "batch_handoff_failed", "The batch's deployment no longer exists.")
            return False
        find = ProviderBatchCall(op=ProviderBatchOp.FIND, deployment_id=deployment.id, batch_id=run.id)
        try:
            answer = await self._ask(deployment.provider, find, POLL_TIMEOUT)
        except (NoRespondersError, NatsTimeout):
            return False
        if answer.ok and answer.provider_batch_id:
            provider_id = answer.provider_batch_id

            def recorded(r: BatchRecord) -> BatchRecord:
                return r if r.provider_batch_id else msgspec.structs.replace(r, provider_batch_id=provider_id)

            run.record = await self.store.change(run.id, recorded) or run.record
            log.info("batch_handoff_found", batch_id=run.id, provider_batch_id=run.record.provider_batch_id)
            return run.record.provider_batch_id is not None
        try:
            claimed_at = float((record.handoff_claim or "").rpartition("@")[2])
        except ValueError:
            claimed_at = 0.0
        if answer.ok and time.time() - claimed_at < CALL_TIMEOUT + SUBMIT_GRACE:
            return False
        await self._all_failed(run, "batch_handoff_interrupted", INTERRUPTED)
        return False

    async def _claim(self, run: BatchRun, deployment: Deployment, claim: str) -> BatchRecord | None:
        def claimed(r: BatchRecord) -> BatchRecord | None:
            if r.handoff_deployment is not None or r.status != BatchStatus.IN_PROGRESS:
                return None
            return msgspec.structs.replace(r, handoff_deployment=deployment.id, handoff_claim=claim)

        record = await self.store.change(run.id, claimed)
        if record is not None:
            run.record = record
        return record

    async def _ask(self, provider: str, call: ProviderBatchCall, timeout: float) -> ProviderBatchAnswer:
        nc = self.edge.nc
        if nc is None:
            raise NoRespondersError
        msg = await nc.request(self.edge.subjects.provider_batch(provider), encode_provider_batch(call), timeout=timeout)
        return decode_provider_batch_answer(msg.data)

    async def _submit(self, run: BatchRun, deployment: Deployment, stopping: asyncio.Event) -> bool:
        """Submit through a worker and record the provider's id; False when the batch ended
        (the provider refused it) or the run stopped before a worker took it."""
        model = str(run.lines[0].body.get("model"))
        bodies = [msgspec.json.encode(line.body) for line in run.lines]
        call = ProviderBatchCall(
            op=ProviderBatchOp.SUBMIT,
            deployment_id=deployment.id,
            batch_id=run.id,
            endpoint=run.record.endpoint,
            lines=bodies,
            upstream_model=deployment.upstream_model_for(model),
        )
        while True:
            try:
                answer = await self._ask(deployment.provider, call, CALL_TIMEOUT)
                break
            except NoRespondersError:  # no worker listens: nothing was submitted, ask again
                if stopping.is_set() or run.lost:
                    await self._unclaim(run)
                    return False
                await asyncio.sleep(NO_WORKER_WAIT)
            except NatsTimeout:  # it may have been submitted: never again
                await self._all_failed(run, "batch_handoff_interrupted", INTERRUPTED)
                return False
        if not answer.ok:
            await self._all_failed(run, answer.error_code or "batch_handoff_failed", answer.message, answer.status)
            return False
        provider_id = answer.provider_batch_id

        def recorded(r: BatchRecord) -> BatchRecord:
            return msgspec.structs.replace(r, provider_batch_id=provider_id)

        run.record = await self.store.change(run.id, recorded) or run.record
        log.info("batch_handed_off", batch_id=run.id, deployment=deployment.id, provider_batch_id=provider_id, lines=len(bodies))
        return True

    async def _unclaim(self, run: BatchRun) -> None:
        def unclaimed(r: BatchRecord) -> BatchRecord | None:
            if r.provider_batch_id is not None:
                return None
            return msgspec.structs.replace(r, handoff_deployment=None, handoff_claim=None)

        run.record = await self.store.change(run.id, unclaimed) or run.record

    async def _follow(self, run: BatchRun, deployment: Deployment, stopping: asyncio.Event) -> None:
        """Poll until the provider's batch ends, then read its lines (metered by the worker)."""
        provider_id = run.record.provider_batch_id or ""
        base = ProviderBatchCall(
            op=ProviderBatchOp.POLL, deployment_id=deployment.id, batch_id=run.id, provider_batch_id=provider_id
        )
        cancel_asked = False
        while True:
            if stopping.is_set() or run.lost:
                return
            if not cancel_asked:
                cancel_asked = await self._cancel_if_asked(run, deployment, base)
            try:
                answer = await self._ask(deployment.provider, base, POLL_TIMEOUT)
            except (NoRespondersError, NatsTimeout):
                answer = None
            if answer is not None and not answer.ok and answer.status < 500 and answer.status not in (408, 429):
                await self._all_failed(run, answer.error_code or "batch_handoff_failed", answer.message, answer.status)
                return
            if answer is not None and answer.state == ProviderBatchState.FAILED:
                await self._all_failed(run, "batch_failed", "The provider failed the batch.", 500)
                return
            if answer is not None and answer.state == ProviderBatchState.ENDED:
                break
            try:
                await asyncio.wait_for(stopping.wait(), self.poll_seconds)
            except TimeoutError:
                pass
        await self._results(run, deployment, base, stopping)

    async def _cancel_if_asked(self, run: BatchRun, deployment: Deployment, base: ProviderBatchCall) -> bool:
        """The gateway's batch is being cancelled: ask the provider to stop it (True once asked;
        the provider's batch then ends with the lines it ran, the others `batch_cancelled`)."""
        found = await self.store.get(run.id)
        if found is None or found[0].status != BatchStatus.CANCELLING:
            return False
        run.record = found[0]
        try:
            answer = await self._ask(deployment.provider, msgspec.structs.replace(base, op=ProviderBatchOp.CANCEL), POLL_TIMEOUT)
        except (NoRespondersError, NatsTimeout):
            return False
        log.info("batch_handoff_cancel", batch_id=run.id, ok=answer.ok, status=answer.status)
        return answer.ok or answer.status < 500

    async def _results(self, run: BatchRun, deployment: Deployment, base: ProviderBatchCall, stopping: asyncio.Event) -> None:
        model = str(run.lines[0].body.get("model"))
        caller, ledgers = await self._meter_for(run, model)
        call = msgspec.structs.replace(
            base,
            op=ProviderBatchOp.RESULTS,
            upstream_model=deployment.upstream_model_for(model),
            caller=caller,
            ledgers=ledgers,
            model_group=model,
            received_at=float(run.record.in_progress_at or run.record.created_at),
        )
        nc = self.edge.nc
        page_bytes = max((nc.max_payload if nc is not None else 1 << 20) - PAGE_MARGIN, 1 << 16)
        start = next((i for i in range(len(run.lines)) if i not in run.done), -1)
        while start >= 0:
            paged = msgspec.structs.replace(call, results_from=start, results_max_bytes=page_bytes)
            try:
                answer = await self._ask(deployment.provider, paged, CALL_TIMEOUT)
            except (NoRespondersError, NatsTimeout):  # asked again: the worker meters each line once
                if stopping.is_set() or run.lost:
                    return
                await asyncio.sleep(NO_WORKER_WAIT)
                continue
            if not answer.ok:
                await self._all_failed(run, answer.error_code or "batch_handoff_failed", answer.message, answer.status)
                return
            for result in answer.results:
                await self._take(run, result)
            run.dirty = True
            start = answer.results_next if answer.results_next > start else -1
        missing = "The provider's batch ended without an answer to this request."
        code = "batch_line_missing"
        if run.record.status == BatchStatus.CANCELLING:
            code, missing = "batch_cancelled", "This request was not run: the batch was cancelled."
        for index in range(len(run.lines)):
            if index not in run.done:
                await self._record(run, index, self._failed_line(run, index, code, missing))
        run.dirty = True

    async def _take(self, run: BatchRun, result: ProviderLineResult) -> None:
        """One line of the provider's results as the line's record (with the gateway's custom id)."""
        if not 0 <= result.index < len(run.lines) or result.index in run.done:
            return
        line_in = run.lines[result.index]
        try:
            body = _decoder.decode(result.body)
        except msgspec.DecodeError:
            body = result.body.decode("utf-8", "replace")
        line = BatchLine(
            state=LineState.DONE,
            request_id=result.request_id,
            ok=result.status < 400,
            result=response_line(f"batch_req_{secrets.token_hex(12)}", line_in.custom_id, result.status, result.request_id, body),
            cost=result.cost,
            input_tokens=result.prompt_tokens,
            output_tokens=result.completion_tokens,
        )
        await self._record(run, result.index, line)

    async def _meter_for(self, run: BatchRun, model: str) -> tuple[Caller, dict[str, LedgerRef]]:
        """Whom the lines' usage rows are for and the budget ledgers they settle into, as the edge's
        admission computes them; a key deleted meanwhile still gets its rows (the provider ran
        the lines), with the batch's owners and no ledgers."""
        record = run.record
        try:
            principal = await self.edge.auth.by_token_fresh(record.key_hash)
        except Exception as exc:
            log.warning("batch_handoff_caller_unknown", batch_id=run.id, error=str(exc) or type(exc).__name__)
            return Caller(key_hash=record.key_hash, user_id=record.user_id, team_id=record.team_id), {}
        now = time.time()
        budgets = covering(principal, model, now) + beyond(principal, self.edge.budgets.gateway, now)
        return principal.caller, {b.key: b.ref for b in budgets}

    async def _budgeted(self, run: BatchRun) -> bool:
        """Whether a budget limits the caller: a provider runs a batch whole, with no reservation
        per line held against the budget, so such a batch runs line by line, each line reserving
        its worst case as any request does (the budget then holds whatever the provider answers)."""
        model = str(run.lines[0].body.get("model"))
        _, ledgers = await self._meter_for(run, model)
        for key, ref in ledgers.items():
            if ref.max_budget is not None:
                log.info("batch_not_handed_off", batch_id=run.id, reason="budgeted", ledger=key)
                return True
        return False

    async def _record(self, run: BatchRun, index: int, line: BatchLine) -> None:
        """The line's record, created once (a line recorded before stays as it was)."""
        line = await self.kept_apart(run.id, index, line)
        if await self.store.claim_line(run.id, index, line) is None:
            found = await self.store.line(run.id, index)
            if found is not None:
                run.done[index] = found[0]
            return
        run.done[index] = line

    def _failed_line(self, run: BatchRun, index: int, code: str, message: str, status: int | None = None) -> BatchLine:
        custom_id = run.lines[index].custom_id
        line_id = f"batch_req_{secrets.token_hex(12)}"
        if status is None:
            result = error_line(line_id, custom_id, code, message)
        else:
            body = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
            result = response_line(line_id, custom_id, status, "", body)
        return BatchLine(state=LineState.DONE, result=result)

    async def _all_failed(self, run: BatchRun, code: str, message: str, status: int | None = None) -> None:
        """Every line not yet recorded ends in the error file with this error."""
        log.warning("batch_handoff_failed", batch_id=run.id, code=code, message=message)
        for index in range(len(run.lines)):
            if index not in run.done:
                await self._record(run, index, self._failed_line(run, index, code, message, status))
        run.dirty = True
