"""A batch as one runner runs it (`BatchRun`: its lines and their outcomes so far), its counts
written into its record, and its end: the output and error files, then its final status."""

from __future__ import annotations

import secrets
import time

import msgspec
import structlog

from gateway.batches.file_store import FileStore, now
from gateway.batches.jsonl import BatchInputLine
from gateway.batches.store import BatchStore
from gateway.batches.wire import error_line
from llmgw.contracts import BatchLine, BatchRecord, BatchStatus, FilePurpose, FileRecord, LineState

log = structlog.get_logger()


def output_file_id(batch_id: str, kind: str) -> str:
    return f"file-{batch_id.removeprefix('batch_')}-{kind}"


class BatchRun:
    """One batch as this runner runs it: its lines' outcomes so far."""

    def __init__(self, record: BatchRecord, lines: list[BatchInputLine], done: dict[int, BatchLine]) -> None:
        self.id = record.id
        self.record = record
        self.lines = lines
        self.done = done
        self.lost = False  # the lease went to another edge: claim nothing more
        self.dirty = True

    def counts(self) -> dict[str, float | int]:
        finished = [line for line in self.done.values() if line.state == LineState.DONE]
        return {
            "completed": sum(1 for line in finished if line.ok),
            "failed": sum(1 for line in finished if not line.ok),
            "spend": sum(line.cost for line in finished),
            "input_tokens": sum(line.input_tokens for line in finished),
            "output_tokens": sum(line.output_tokens for line in finished),
        }


async def write_counts(store: BatchStore, run: BatchRun, **fields: object) -> BatchRecord | None:
    """The batch's counts, spend and tokens from its lines' records (and `fields`) into its record."""
    counts = run.counts()

    def counted(r: BatchRecord) -> BatchRecord:
        return msgspec.structs.replace(r, **counts, **fields)

    return await store.change(run.id, counted)


async def finish(store: BatchStore, files: FileStore, run: BatchRun) -> None:
    """Write the output and error files of a batch whose lines are over, then its end status."""
    found = await store.get(run.id)
    if found is None:
        return
    record = found[0]
    if record.status == BatchStatus.IN_PROGRESS:
        all_done = len(run.done) == len(run.lines)
        if not all_done and time.time() < record.expires_at:
            return  # (stopped early: the next look goes on)
        expired = not all_done
        record = await write_counts(store, run, status=BatchStatus.FINALIZING, finalizing_at=now()) or record
    else:
        expired = False
    output: list[str] = []
    errors: list[str] = []
    for index in sorted(run.done):
        line = run.done[index]
        if line.state != LineState.DONE:
            continue
        (output if line.ok else errors).append(line.result)
    if expired:
        for index, line_in in enumerate(run.lines):
            if index not in run.done:
                errors.append(
                    error_line(
                        f"batch_req_{secrets.token_hex(12)}",
                        line_in.custom_id,
                        "batch_expired",
                        "This request could not be executed before the completion window expired.",
                    )
                )
    output_id = await write_file(files, record, "output", output)
    error_id = await write_file(files, record, "errors", errors)
    at = now()
    if record.status == BatchStatus.CANCELLING:
        end = {"status": BatchStatus.CANCELLED, "cancelled_at": at}
    elif expired:
        end = {"status": BatchStatus.EXPIRED, "expired_at": at}
    else:
        end = {"status": BatchStatus.COMPLETED, "completed_at": at}
    await write_counts(store, run, output_file_id=output_id, error_file_id=error_id, **end)
    log.info("batch_finished", batch_id=run.id, status=end["status"], **run.counts())


async def write_file(files: FileStore, record: BatchRecord, kind: str, lines: list[str]) -> str | None:
    if not lines:
        return None
    data = ("\n".join(lines) + "\n").encode()
    file_id = output_file_id(record.id, kind)
    file = FileRecord(
        id=file_id,
        bytes=len(data),
        created_at=now(),
        filename=f"{record.id}_{kind}.jsonl",
        purpose=FilePurpose.BATCH_OUTPUT,
        key_hash=record.key_hash,
        user_id=record.user_id,
        team_id=record.team_id,
    )
    await files.put(file, data)
    return file_id
