"""Running batches: a task in every edge process that takes open batches by a KV lease and runs
their lines through the pipeline, at most `batch_concurrency` lines of a batch at once, fewer
while interactive traffic is present (pace.py).

What survives a restart, and why no line runs twice:
- the batch (its record in KV, its input file in the object store) outlives every process;
- a runner holds the batch's lease (its record in the batch runs bucket, renewed every third of
  its length); a lease that lapsed (its edge was killed, or lost NATS) is taken by the next edge
  that looks;
- before a line is sent, its record is *created* in the lines bucket (`<id>.<index>`, state
  `sent`): a create fails when the record exists, so a line is claimed once, ever; its result is
  written into that record (compare-and-set on the claim's revision) when its answer is in;
- a runner that takes over a batch counts the lines done, runs the lines never claimed, and puts
  a line claimed but never finished (its edge died while it ran: the worker may have served it
  and metered it) in the error file as `batch_line_interrupted`, never sending it again;
- the output and error files have ids derived from the batch's, so a finalization cut short is
  redone whole, and a finished batch's files and counts are kept records like any other.
A worker killed mid-line is the pipeline's matter (JetStream redelivers the request to another
worker, the line waits for its answer), as for any request. A stopping edge claims no more lines
and lets those in flight finish (within its shutdown grace) before it gives its leases up.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from nats.js.errors import KeyWrongLastSequenceError

from gateway.batches.file_store import FileStore, now
from gateway.batches.finish import INTERRUPTED, BatchRun, finish, forget_lines, write_counts
from gateway.batches.handoff import Handoff
from gateway.batches.jsonl import BatchInputLine, parse_line, split_lines
from gateway.batches.line_call import LineAnswer, line_request_id, run_line
from gateway.batches.pace import BatchPace
from gateway.batches.store import BatchStore
from gateway.batches.wire import error_line, response_line
from gateway.errors import error_json
from llmgw.contracts import (
    BatchLine,
    BatchRecord,
    BatchStatus,
    ErrorCode,
    ErrorType,
    LineState,
    encode_record,
    result_object,
)

if TYPE_CHECKING:
    from gateway.edge import Edge
    from gateway.pipeline import Pipeline

log = structlog.get_logger()

PROGRESS_EVERY = 0.5  # seconds between writes of a running batch's counts and spend
FINISH_ATTEMPTS = 8  # writes of a line's result tried while NATS is away (about half a minute)
RETRY_AFTER = 1.0  # seconds before a batch whose run failed (NATS away) is looked at again
BUS_WAIT = 0.2  # seconds between looks at the bus while it is away
RECORD_MARGIN = 4096  # bytes of a KV message that are not the record (subject, headers)
MAX_RETRY_WAIT = 5.0  # seconds a line refused by a rate limit waits at most before it is sent again

_encoder = msgspec.json.Encoder()


def whole(body: dict[str, Any]) -> dict[str, Any]:
    """A line's body asking for a whole answer: a batch's answers are whole lines of a file, so
    `stream` (and `stream_options`) are dropped."""
    if "stream" not in body and "stream_options" not in body:
        return body
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


class BatchRunner:
    def __init__(self, edge: Edge, pipeline: Pipeline, files: FileStore, store: BatchStore) -> None:
        self.edge = edge
        self.pipeline = pipeline
        self.files = files
        self.store = store
        settings = edge.settings
        self.concurrency = settings.batch_concurrency
        # While interactive traffic is present, the lines of all this edge's batches go at a trickle.
        self.pace = BatchPace(lambda: edge.traffic, settings.batch_yield_lines, settings.batch_yield_pause)
        self.lease_seconds = settings.batch_lease_seconds
        self.poll = settings.batch_poll_seconds
        self.grace = settings.shutdown_grace
        self.owner = f"edge-{secrets.token_hex(6)}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()  # (set with `_stopping`: what a hand-off's poll waits on)
        self._task: asyncio.Task[None] | None = None
        self.handoff = Handoff(edge, store, self.owner, self._kept_apart)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-runner")

    def wake(self) -> None:
        """A batch was created or cancelled on this edge: look now."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=self.grace)
        for task in self.running.values():
            task.cancel()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                for batch_id in await self.store.open_ids():
                    if batch_id in self.running or self._stopping:
                        continue
                    revision = await self.store.take_lease(batch_id, self.owner, self.lease_seconds, None)
                    if revision is None:
                        continue
                    task = asyncio.create_task(self._hold(batch_id, revision), name=f"batch:{batch_id}")
                    self.running[batch_id] = task
                    task.add_done_callback(self._ended)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("batch_runner_look_failed", error=str(exc) or type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)
            self._wake.clear()

    def _ended(self, task: asyncio.Task[None]) -> None:
        for batch_id, running in list(self.running.items()):
            if running is task:
                del self.running[batch_id]

    async def _hold(self, batch_id: str, revision: int) -> None:
        """Run the batch while renewing its lease; give the lease up when done or stopping."""
        state: dict[str, BatchRun] = {}
        held = [revision]
        renewing = asyncio.create_task(self._renew(batch_id, held, state))
        try:
            await self._run(batch_id, state)
            found = await self.store.get(batch_id)
            if found is not None and found[0].status not in BatchStatus.OPEN:
                await self.store.ended(batch_id)
                return
            # (no record: a batch being created this moment, or whose creation was cut short)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("batch_run_failed", batch_id=batch_id, error=str(exc) or type(exc).__name__)
            await asyncio.sleep(RETRY_AFTER)
            return  # (the lease is ours until it lapses: the next look takes it again)
        finally:
            renewing.cancel()
        with contextlib.suppress(Exception):
            await self.store.drop_lease(batch_id, held[0])

    async def _renew(self, batch_id: str, held: list[int], state: dict[str, BatchRun]) -> None:
        """Renew the lease every third of its length (`held[0]`: its revision now)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                renewed = await self.store.take_lease(batch_id, self.owner, self.lease_seconds, held[0])
            except Exception as exc:
                log.warning("batch_lease_renewal_failed", batch_id=batch_id, error=str(exc) or type(exc).__name__)
                continue
            if renewed is not None:
                held[0] = renewed
            else:
                log.warning("batch_lease_lost", batch_id=batch_id)
                if "run" in state:
                    state["run"].lost = True
                return

    # ---- a batch's run ------------------------------------------------------------------------

    async def _run(self, batch_id: str, state: dict[str, BatchRun]) -> None:
        found = await self.store.get(batch_id)
        if found is None or found[0].status not in BatchStatus.OPEN:
            return
        record = found[0]
        data = await self.files.content(record.input_file_id)
        if data is None and record.status != BatchStatus.VALIDATING:
            await self._input_gone(record)
            return
        lines = [parse_line(raw) for raw in split_lines(data or b"")]
        if record.status == BatchStatus.VALIDATING:
            validated = await self._validated(record, data, lines)
            if validated is None or validated.status not in BatchStatus.OPEN:
                return
            record = validated
        run = state["run"] = BatchRun(record, lines, await self.store.line_records(batch_id, len(lines)))
        if not await self.handoff.run(run, self._stopped):  # (else the provider's batch API ran it)
            for index, line in list(run.done.items()):
                if line.state == LineState.SENT:  # its edge died while it ran: it is never sent again
                    await self._interrupted(run, index, line)
            progress = asyncio.create_task(self._progress(run))
            try:
                await self._lines(run)
            finally:
                progress.cancel()
        if run.lost or self._stopping:
            return
        if await finish(self.store, self.files, run):
            await self.store.ended(run.id)
            await forget_lines(self.store, self.files, run)

    async def _input_gone(self, record: BatchRecord) -> None:
        error = {"code": "invalid_file", "message": f"The input file {record.input_file_id} no longer exists."}
        at = now()
        await self.store.change(
            record.id, lambda r: msgspec.structs.replace(r, status=BatchStatus.FAILED, failed_at=at, errors=[error])
        )

    async def _validated(self, record: BatchRecord, data: bytes | None, lines: list[BatchInputLine]) -> BatchRecord | None:
        errors: list[dict[str, object]] = []
        if data is None:
            errors.append({"code": "invalid_file", "message": f"The input file {record.input_file_id} no longer exists."})
        for number, line in enumerate(lines, start=1):
            if line.url != record.endpoint:
                errors.append(
                    {
                        "code": "invalid_url",
                        "line": number,
                        "message": f"The line's url {line.url} is not the batch's endpoint {record.endpoint}.",
                        "param": "url",
                    }
                )
        at = now()

        def validated(r: BatchRecord) -> BatchRecord | None:
            if r.status != BatchStatus.VALIDATING:
                return r if r.status in BatchStatus.OPEN else None
            if errors:
                return msgspec.structs.replace(r, status=BatchStatus.FAILED, failed_at=at, errors=errors[:100])
            return msgspec.structs.replace(r, status=BatchStatus.IN_PROGRESS, in_progress_at=at, total=len(lines))

        changed = await self.store.change(record.id, validated)
        if changed is not None and changed.status == BatchStatus.IN_PROGRESS:
            log.info("batch_started", batch_id=record.id, lines=len(lines), endpoint=record.endpoint)
        return changed

    async def _lines(self, run: BatchRun) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        in_flight: set[asyncio.Task[None]] = set()

        def ended(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slots.release()
            self.pace.ended()

        def stopped() -> bool:
            return run.lost or self._stopping

        try:
            for index in range(len(run.lines)):
                if index in run.done:
                    continue
                await slots.acquire()
                if not await self.pace.turn(stopped):
                    slots.release()
                    break
                try:
                    going_on = not stopped() and await self._go_on(run)
                except BaseException:  # (the turn is given back, or the pace would count it forever)
                    slots.release()
                    self.pace.ended()
                    raise
                if not going_on:
                    slots.release()
                    self.pace.ended()
                    break
                task = asyncio.create_task(self._line(run, index))
                in_flight.add(task)
                task.add_done_callback(ended)
        finally:
            if in_flight:  # lines already sent finish, whatever stopped the others
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _go_on(self, run: BatchRun) -> bool:
        """Whether more lines may be sent: the batch is neither cancelled nor past its window. While
        the bus is away no line is claimed (it would only be refused as unavailable)."""
        while not (self.edge.nc is not None and self.edge.nc.is_connected):
            if self._stopping or run.lost:
                return False
            await asyncio.sleep(BUS_WAIT)
        found = await self.store.get(run.id)
        if found is None:
            return False
        run.record = found[0]
        return run.record.status == BatchStatus.IN_PROGRESS and time.time() < run.record.expires_at

    async def _line(self, run: BatchRun, index: int) -> None:
        line = run.lines[index]
        request_id = line_request_id(run.id, index)
        claim = BatchLine(state=LineState.SENT, request_id=request_id)
        revision = await self.store.claim_line(run.id, index, claim)
        if revision is None:  # claimed before (by a runner that lost its lease)
            found = await self.store.line(run.id, index)
            if found is not None:
                run.done[index] = found[0]
            return
        run.done[index] = claim
        line_id = f"batch_req_{secrets.token_hex(12)}"
        answer = await self._send(run, index, request_id)
        if answer is None:  # it never reached a worker, and the batch stopped meanwhile
            await self.store.release_line(run.id, index, revision)
            run.done.pop(index, None)
            return
        result = BatchLine(
            state=LineState.DONE,
            request_id=answer.request_id,
            ok=answer.status < 400,
            result=response_line(line_id, line.custom_id, answer.status, answer.request_id, answer.json_body()),
            cost=answer.cost,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
        )
        result = await self._kept_apart(run.id, index, result)
        for attempt in range(FINISH_ATTEMPTS):
            try:
                await self.store.finish_line(run.id, index, result, revision)
                break
            except KeyWrongLastSequenceError:  # another runner declared it interrupted meanwhile
                log.warning("batch_line_taken_over", batch_id=run.id, line=index)
                return
            except Exception as exc:  # NATS away for a moment: the result is kept in memory, retried
                log.warning("batch_line_not_recorded", batch_id=run.id, line=index, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        else:
            return  # (never recorded: it stays `sent`, an interrupted line to the runner after)
        run.done[index] = result
        run.dirty = True

    async def _kept_apart(self, batch_id: str, index: int, line: BatchLine) -> BatchLine:
        """The line as its KV record holds it: a result too large for a KV message goes to the
        files object store first (a big embeddings answer)."""
        nc = self.edge.nc
        if nc is None or len(encode_record(line)) + RECORD_MARGIN <= nc.max_payload:
            return line
        await self.files.put_object(result_object(batch_id, index), line.result.encode())
        return msgspec.structs.replace(line, result="", apart=True)

    async def _send(self, run: BatchRun, index: int, request_id: str) -> LineAnswer | None:
        """The line's answer from the pipeline. A line refused before it reached a worker by a rate
        limit or an unavailable bus is sent again after its `retry-after`; None when the batch
        stopped (cancelled, expired, its lease lost, the edge stopping) while it waited."""
        body = _encoder.encode(whole(run.lines[index].body))
        while True:
            try:
                answer = await run_line(self.pipeline, run.record.endpoint, body, run.record.key_hash, request_id)
            except Exception:  # (the pipeline answers every failure itself: this is a bug)
                log.exception("batch_line_failed", batch_id=run.id, line=index)
                return LineAnswer(500, request_id, error_json("internal error", ErrorType.API, ErrorCode.INTERNAL), 0.0)
            if answer.retry_after is None:
                return answer
            await asyncio.sleep(min(answer.retry_after, MAX_RETRY_WAIT))
            if run.lost or self._stopping or not await self._go_on(run):
                return None

    async def _interrupted(self, run: BatchRun, index: int, line: BatchLine) -> None:
        custom_id = run.lines[index].custom_id if index < len(run.lines) else ""
        message = INTERRUPTED
        result = BatchLine(
            state=LineState.DONE,
            request_id=line.request_id,
            result=error_line(f"batch_req_{secrets.token_hex(12)}", custom_id, "batch_line_interrupted", message),
        )
        found = await self.store.line(run.id, index)
        if found is None or found[0].state != LineState.SENT:
            if found is not None:
                run.done[index] = found[0]
            return
        try:
            await self.store.finish_line(run.id, index, result, found[1])
        except KeyWrongLastSequenceError:  # its runner finished it after all
            refreshed = await self.store.line(run.id, index)
            if refreshed is not None:
                run.done[index] = refreshed[0]
            return
        run.done[index] = result

    async def _progress(self, run: BatchRun) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            if run.dirty:
                run.dirty = False
                with contextlib.suppress(Exception):
                    await write_counts(self.store, run)
