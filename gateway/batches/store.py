"""Batches in KV: the batch records (`batch.<id>`), the lease of each batch not yet ended (its id in
the batch runs bucket: runners list that bucket, as small as the open batches are few) and each
line's record (`<batch id>.<index>` in the lines bucket). Every change of a batch record is a
compare-and-set on its revision, so a cancel and a runner's progress never overwrite each other."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from llmgw.contracts import (
    BatchLease,
    BatchLine,
    BatchRecord,
    Subjects,
    batch_key,
    decode_batch_lease,
    decode_batch_line,
    decode_batch_record,
    encode_record,
    line_key,
)
from llmgw.kv import open_bucket

CAS_ATTEMPTS = 20
FREE_LEASE = encode_record(BatchLease(owner="", expires_at=0.0))
ID = re.compile(r"[A-Za-z0-9_-]{1,200}")  # ids as the gateway makes them (and KV keys may hold)


class BatchStore:
    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        self._kv: KeyValue | None = None
        self._lines: KeyValue | None = None
        self._runs: KeyValue | None = None

    async def start(self, js: JetStreamContext) -> None:
        self._kv = await open_bucket(js, self.subjects.batches_bucket)
        self._lines = await open_bucket(js, self.subjects.batch_lines_bucket)
        self._runs = await open_bucket(js, self.subjects.batch_runs_bucket)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("the batch store is not started")
        return self._kv

    @property
    def runs(self) -> KeyValue:
        if self._runs is None:
            raise RuntimeError("the batch store is not started")
        return self._runs

    @property
    def lines(self) -> KeyValue:
        if self._lines is None:
            raise RuntimeError("the batch store is not started")
        return self._lines

    # ---- batch records ------------------------------------------------------------------------

    async def create(self, record: BatchRecord) -> None:
        """The batch's lease record first (a runner finding it without a batch ends it), then the batch."""
        await self.runs.put(record.id, FREE_LEASE)
        await self.kv.create(batch_key(record.id), encode_record(record))

    async def get(self, batch_id: str) -> tuple[BatchRecord, int] | None:
        """The record and its revision, or None."""
        if not ID.fullmatch(batch_id):
            return None
        try:
            entry = await self.kv.get(batch_key(batch_id))
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None
        if not entry.value:
            return None
        return decode_batch_record(entry.value), entry.revision or 0

    async def change(self, batch_id: str, change: Callable[[BatchRecord], BatchRecord | None]) -> BatchRecord | None:
        """Apply `change` to the current record by compare-and-set (retried on a concurrent write);
        `change` returning None leaves the record as it is. The record as it is after."""
        for _ in range(CAS_ATTEMPTS):
            current = await self.get(batch_id)
            if current is None:
                return None
            record, revision = current
            changed = change(record)
            if changed is None:
                return record
            try:
                await self.kv.update(batch_key(batch_id), encode_record(changed), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return changed
        raise RuntimeError(f"batch {batch_id}: too many concurrent changes")

    async def all(self) -> list[BatchRecord]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        records = []
        for key in keys:
            if not key.startswith("batch."):
                continue
            found = await self.get(key.removeprefix("batch."))
            if found is not None:
                records.append(found[0])
        return records

    async def open_ids(self) -> list[str]:
        """The batches not yet ended (each has its lease record until it ends)."""
        try:
            return list(await self.runs.keys())
        except NoKeysError:
            return []

    # ---- leases -------------------------------------------------------------------------------

    async def take_lease(self, batch_id: str, owner: str, seconds: float, held: int | None) -> int | None:
        """Take (or, with `held`, the revision of our lease, renew) the batch's lease for
        `seconds`; the lease's new revision, or None when another owner holds it (or the batch ended)."""
        lease = encode_record(BatchLease(owner=owner, expires_at=time.time() + seconds))
        try:
            if held is not None:
                return await self.runs.update(batch_id, lease, last=held)
            try:
                entry = await self.runs.get(batch_id)
            except (KeyNotFoundError, KeyDeletedError, NotFoundError):
                return None  # ended
            if entry.value:
                current = decode_batch_lease(entry.value)
                if current.owner != owner and current.expires_at > time.time():
                    return None
            return await self.runs.update(batch_id, lease, last=entry.revision)
        except (KeyWrongLastSequenceError, msgspec.DecodeError):
            return None

    async def drop_lease(self, batch_id: str, held: int) -> None:
        """Give the lease up (a stopping edge): the next edge that looks takes the batch at once."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self.runs.update(batch_id, FREE_LEASE, last=held)

    async def ended(self, batch_id: str) -> None:
        """The batch ended (its files and final status are written): no runner looks at it again."""
        with contextlib.suppress(KeyNotFoundError, KeyDeletedError, NotFoundError):
            await self.runs.delete(batch_id)

    # ---- lines --------------------------------------------------------------------------------

    async def claim_line(self, batch_id: str, index: int, line: BatchLine) -> int | None:
        """Record that a line is being sent; None when it was claimed before (never send it again)."""
        try:
            return await self.lines.create(line_key(batch_id, index), encode_record(line))
        except KeyWrongLastSequenceError:
            return None
        except Exception as exc:
            if "wrong last sequence" in str(exc):
                return None
            raise

    async def finish_line(self, batch_id: str, index: int, line: BatchLine, revision: int) -> None:
        await self.lines.update(line_key(batch_id, index), encode_record(line), last=revision)

    async def release_line(self, batch_id: str, index: int, revision: int) -> None:
        """Give a claimed line up (it never reached a worker): the next runner sends it."""
        await self.lines.delete(line_key(batch_id, index), last=revision)

    async def forget_line(self, batch_id: str, index: int) -> None:
        await self.lines.purge(line_key(batch_id, index))

    async def line(self, batch_id: str, index: int) -> tuple[BatchLine, int] | None:
        """The line's record and its revision, or None (never claimed)."""
        try:
            entry = await self.lines.get(line_key(batch_id, index))
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None
        return (decode_batch_line(entry.value), entry.revision or 0) if entry.value else None

    async def line_records(self, batch_id: str, total: int) -> dict[int, BatchLine]:
        """The lines claimed so far, by index."""
        out = {}
        for index in range(total):
            found = await self.line(batch_id, index)
            if found is not None:
                out[index] = found[0]
        return out
