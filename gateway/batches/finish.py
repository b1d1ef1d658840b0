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
from llmgw.contracts import BatchLine, BatchRecord, BatchStatus, FilePurpose, FileRecord, LineState, result_object

log = structlog.get_logger()

INTERRUPTED = (
    "The gateway restarted (or could not store the answer) while this request ran; it was not sent again"
    " (it may have been served and metered)."
)


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

    def counts(self, final: bool = False) -> dict[str, float | int]:
        """The counts so far; `final`: a line whose result could not be stored counts as failed."""
        finished = [line for line in self.done.values() if line.state == LineState.DONE]
        unstored = len(self.done) - len(finished) if final else 0
        return {
            "completed": sum(1 for line in finished if line.ok),
            "failed": sum(1 for line in finished if not line.ok) + unstored,
            "spend": sum(line.cost for line in finished),
            "input_tokens": sum(line.input_tokens for line in finished),
            "output_tokens": sum(line.output_tokens for line in finished),
        }


async def write_counts(store: BatchStore, run: BatchRun, final: bool = False, **fields: object) -> BatchRecord | None:
    """The batch's counts, spend and tokens from its lines' records (and `fields`) into its record."""
    counts = run.counts(final)

    def counted(r: BatchRecord) -> BatchRecord:
        return msgspec.structs.replace(r, **counts, **fields)

    return await store.change(run.id, counted)


async def finish(store: BatchStore, files: FileStore, run: BatchRun) -> bool:
    """Write the output and error files of a batch whose lines are over, then its end status;
    False when it is not over after all."""
    found = await store.get(run.id)
    if found is None:
        return False
    record = found[0]
    if record.status == BatchStatus.IN_PROGRESS:
        all_done = len(run.done) == len(run.lines)
        if not all_done and time.time() < record.expires_at:
            return False  # (stopped early: the next look goes on)
        expired = not all_done
        record = await write_counts(store, run, status=BatchStatus.FINALIZING, finalizing_at=now()) or record
    else:
        expired = False
    output: list[str] = []
    errors: list[str] = []
    for index in sorted(run.done):
        line = run.done[index]
        if line.state != LineState.DONE:  # its result could not be stored: it is not sent again
            custom_id = run.lines[index].custom_id if index < len(run.lines) else ""
            errors.append(error_line(f"batch_req_{secrets.token_hex(12)}", custom_id, "batch_line_interrupted", INTERRUPTED))
            continue
        result = line.result
        if line.apart:
            result = (await files.content(result_object(run.id, index)) or b"").decode()
        (output if line.ok else errors).append(result)
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
    await write_counts(store, run, True, output_file_id=output_id, error_file_id=error_id, **end)
    log.info("batch_finished", batch_id=run.id, status=end["status"], **run.counts(True))
    return True


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


async def forget_lines(store: BatchStore, files: FileStore, run: BatchRun) -> None:
    """Once a batch ended and its files are written, its lines' records (and results kept apart)
    are no longer needed: an ended batch is never run again."""
    for index, line in list(run.done.items()):
        try:
            if line.apart:
                await files.delete_object(result_object(run.id, index))
            await store.forget_line(run.id, index)
        except Exception as exc:  # (left behind: harmless)
            log.warning("batch_line_not_forgotten", batch_id=run.id, line=index, error=str(exc) or type(exc).__name__)
            return
