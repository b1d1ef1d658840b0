"""Chaos soak: does llmgw keep its promises while its processes are broken under a steady load?

Starts an embedded stack of separate processes (bench/chaos_stack.py: nats-server, metering on
chdb, two workers, two edges) in front of the fake OpenAI upstream, then sends `--rate` requests/s
for `--seconds` (600) of mixed load: whole and streamed chat completions, native `/v1/messages`,
embeddings; from an unlimited key, three budgeted keys (budgets that run out during the run) and
a rate-limited key (rpm and parallel requests). Every 20-40 s (at random, `--seed`) one fault:
SIGKILL a worker (restarted), SIGKILL metering (restarted), SIGTERM an edge (the load goes to the
other while it is started again), restart nats-server, stall the upstream (SIGSTOP for 5-10 s);
each fault once, in a random order, before any comes again.

At the end it checks, and prints as a table: every answered request has exactly one usage row (by
status class); no budget is overspent (ledger and ClickHouse); no reservation or rate-limit slot is
left once its requests are over (live ones must be gone by their expiry); memory (RSS per process,
since its last start) flat within `--tolerance` percent. Exit status 0 when every check passes.

Run: .venv/bin/python -m bench.chaos [--seconds 600] [--rate 20] [--seed N] [--tolerance 15]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats

from bench import chaos_checks as checks
from bench.chaos_checks import Check, Outcome
from bench.chaos_stack import REQUEST_TIMEOUT_S, ChaosStack
from bench.soak import descendants, rss_kb
from llmgw.contracts import LedgerKind, ledger_key

HELLO = [{"role": "user", "content": "Hello there"}]
ONE_CHAT = 3 * 2.5e-6 + 16 * 1e-5  # "Hello there" answered with 16 tokens at gpt-4o's prices
KINDS = {"whole": 0.35, "streamed": 0.25, "messages": 0.15, "embeddings": 0.25}
KEYS = {"plain": 0.5, "budget-0": 0.1, "budget-1": 0.1, "budget-2": 0.1, "limited": 0.2}
FAULTS = ("kill_worker", "kill_metering", "term_edge", "restart_nats", "stall_upstream")
RESERVATION_GRACE_S = 60.0  # gateway/budgets.py: a reservation outlives its request's deadline by this


def request_of(kind: str, key: str) -> tuple[str, dict, dict]:
    """(path, body, headers) of one request."""
    auth = {"Authorization": f"Bearer {key}"}
    if kind == "embeddings":
        return "/v1/embeddings", {"model": "embed", "input": ["hello world", "one two three"]}, auth
    if kind == "messages":
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return "/v1/messages", {"model": "gpt-4", "max_tokens": 16, "messages": HELLO}, headers
    body: dict = {"model": "gpt-4", "messages": HELLO, "max_tokens": 16}
    if kind == "streamed":
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return "/v1/chat/completions", body, auth


async def send(session: aiohttp.ClientSession, url: str, outcome: Outcome, key: str) -> None:
    path, body, headers = request_of(outcome.kind, key)
    try:
        async with session.post(url + path, json=body, headers=headers) as resp:
            outcome.status, outcome.request_id = resp.status, resp.headers.get("x-request-id")
            text = await resp.text()
            if resp.status == 200:
                outcome.complete = "data: [DONE]" in text if outcome.kind == "streamed" else text.rstrip().endswith("}")
    except (aiohttp.ClientError, TimeoutError, OSError):
        pass


class Run:
    def __init__(self, args: argparse.Namespace, stack: ChaosStack) -> None:
        self.args, self.stack = args, stack
        self.rng = random.Random(args.seed)
        self.began = time.monotonic()
        self.outcomes: list[Outcome] = []
        self.faults: list[tuple[float, str, float]] = []  # (at, fault, seconds it took)
        self.memory: dict[str, list[tuple[float, int, int]]] = {}  # process -> (at, pid, rss kB)
        self.keys: dict[str, dict] = {}
        self.budget = 0.0
        self.next_edge = 0

    def at(self) -> float:
        return time.monotonic() - self.began

    async def make_keys(self) -> None:
        share = sum(v for k, v in KEYS.items() if k.startswith("budget-")) / 3
        # Each budget pays for about a third of what its key is sent: it runs out early on.
        self.budget = round(self.args.seconds * self.args.rate * share * ONE_CHAT / 3, 6)
        for name in KEYS:
            params: dict = {"key_alias": f"chaos-{name}"}
            if name.startswith("budget-"):
                params["max_budget"] = self.budget
            if name == "limited":
                params |= {"rpm_limit": 60, "max_parallel_requests": 2}
            self.keys[name] = await self.stack.admin("/key/generate", params)

    def edge(self) -> str | None:
        up = [i for i, ok in enumerate(self.stack.edges_up) if ok]
        if not up:
            return None
        self.next_edge += 1
        return self.stack.edge_url(up[self.next_edge % len(up)])

    async def load(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S + 30)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            tasks: set[asyncio.Task] = set()
            n, interval = 0, 1.0 / self.args.rate
            while (due := n * interval) < self.args.seconds:
                await asyncio.sleep(max(0.0, due - self.at()))
                n += 1
                kind = self.rng.choices(list(KINDS), list(KINDS.values()))[0]
                key = self.rng.choices(list(KEYS), list(KEYS.values()))[0]
                outcome = Outcome(kind, key, self.at())
                self.outcomes.append(outcome)
                url = self.edge()
                if url is None:
                    continue
                task = asyncio.create_task(send(session, url, outcome, self.keys[key]["key"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks)

    async def fault(self, name: str) -> None:
        stack = self.stack
        if name == "kill_worker":
            worker = self.rng.choice(stack.workers)
            await worker.signal(signal.SIGKILL)
            await worker.start()
        elif name == "kill_metering":
            await stack.metering.signal(signal.SIGKILL)
            await stack.metering.start()
        elif name == "term_edge":
            index = self.rng.randrange(len(stack.edges))
            stack.edges_up[index] = False  # (the load balancer drains it first)
            await stack.edges[index].signal(signal.SIGTERM, 40)
            await stack.start_edge(index)
        elif name == "restart_nats":
            await stack.restart_nats()
        elif name == "stall_upstream":
            stack.upstream.pause(True)
            await asyncio.sleep(self.rng.uniform(5, 10))
            stack.upstream.pause(False)

    async def chaos(self) -> None:
        bag: list[str] = []
        while True:
            await asyncio.sleep(self.rng.uniform(20, 40))
            if self.at() > self.args.seconds - 5:
                return
            if not bag:  # every fault once, in a random order, before any comes again
                bag = self.rng.sample(FAULTS, len(FAULTS))
            name = bag.pop()
            started = self.at()
            await self.fault(name)
            self.faults.append((started, name, self.at() - started))
            print(f"  {started:6.1f} s  {name} ({self.faults[-1][2]:.1f} s)", flush=True)

    async def sample_memory(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for child in [*self.stack.llmgw, self.stack.nats]:
                pid = child.pid
                if pid is not None:
                    rss = sum(rss_kb(p) for p in [pid, *descendants(pid)])
                    self.memory.setdefault(child.name, []).append((self.at(), pid, rss))
            try:
                await asyncio.wait_for(stop.wait(), self.args.interval)
            except TimeoutError:
                pass


async def verify(run: Run) -> list[Check]:
    args, stack = run.args, run.stack
    nc = await nats.connect(stack.nats_url)
    try:
        prefix = "llmgw"
        ids = [o.request_id for o in run.outcomes if o.request_id]
        copies = await checks.wait_for_rows(nc, prefix, ids, 120)
        found = checks.rows_check(run.outcomes, copies)
        costs = await checks.cost_by_key(nc, prefix)
        ledgers = await checks.ledgers_of(nc, prefix)
        worst = []
        for name, key in run.keys.items():
            if not name.startswith("budget-"):
                continue
            ledger = ledgers.get(ledger_key(LedgerKind.KEY, key["token"]))
            worst.append((costs.get(key["token"], 0.0), ledger.spent if ledger else 0.0))
        over = [c for pair in worst for c in pair if c > run.budget + 1e-9]
        figure = f"budget ${run.budget:g} each; rows ${max((w[0] for w in worst), default=0):.6f}, ledgers ${max((w[1] for w in worst), default=0):.6f} at most"
        found.append(Check("no budget overspent", not over, figure))
        # Reservations and slots: none may outlive the requests that held them past their expiry.
        left = await checks.leftovers(nc, prefix)
        at_end = left
        give_up = time.time() + REQUEST_TIMEOUT_S + RESERVATION_GRACE_S + 10
        while (left.live_reservations or left.live_slots) and time.time() < give_up:
            await asyncio.sleep(2)
            left = await checks.leftovers(nc, prefix)
        figure = (
            f"live at the end of the load: {at_end.live_reservations} reservations, {at_end.live_slots} slots; "
            f"after: {left.live_reservations}, {left.live_slots}; expired, not settled: {left.expired_reservations} reservations"
        )
        found.append(
            Check("no reservation or slot left past its expiry", not (left.live_reservations or left.live_slots), figure)
        )
    finally:
        await nc.close()
    for name, samples in sorted(run.memory.items()):
        found.append(memory_check(name, samples, args))
    return found


def memory_check(name: str, samples: list[tuple[float, int, int]], args: argparse.Namespace) -> Check:
    """Memory of a process since its last start, flat over the second half of its life (and past
    the warm-up): what a code path loads once, the first time the load mix needs it, is not growth."""
    pid = samples[-1][1]
    since = [s for s in samples if s[1] == pid]
    life = since[-1][0] - since[0][0]
    after = [s for s in since if s[0] - since[0][0] >= max(args.warmup, life / 2)] or since[-1:]
    first, last, peak = after[0][2], since[-1][2], max(s[2] for s in since)
    change = (last - first) * 100 / first if first else 0.0
    span = since[-1][0] - after[0][0]
    judged = name != "nats-server" and span >= args.warmup
    shown = f"{first / 1024:.0f} -> {last / 1024:.0f} MB ({change:+.1f}%) over the last {span:.0f} s, peak {peak / 1024:.0f} MB"
    return Check(f"memory {name}", abs(change) <= args.tolerance or not judged, shown + ("" if judged else " (not judged)"))


def table(run: Run, found: list[Check]) -> str:
    lines = ["| check | result | figures |", "|---|---|---|"]
    lines += [f"| {c.name} | {'PASS' if c.ok else 'FAIL'} | {c.figure} |" for c in found]
    lines.append("")
    by = {}
    for o in run.outcomes:
        label = "no answer" if o.status == 0 else str(o.status)
        by[label] = by.get(label, 0) + 1
    lines.append(f"- requests: {len(run.outcomes)} sent, by status: {dict(sorted(by.items()))}")
    kinds = {k: sum(1 for o in run.outcomes if o.kind == k and o.complete) for k in KINDS}
    cut = {k: sum(1 for o in run.outcomes if o.kind == k and o.status == 200 and not o.complete) for k in KINDS}
    cut_keys = sorted({o.key for o in run.outcomes if o.status == 200 and not o.complete})
    lines.append(f"- complete 200s by kind: {kinds}; 200s whose body or stream was cut: {cut} (keys: {cut_keys})")
    lines.append(f"- faults (at, what, seconds it took): {[f'{a:.0f}s {n} {d:.1f}s' for a, n, d in run.faults]}")
    return "\n".join(lines)


def write_memory(path: Path, memory: dict[str, list[tuple[float, int, int]]]) -> None:
    """The memory samples, one line each: process, seconds into the run, pid, RSS kB."""
    lines = [f"{name}\t{at:.0f}\t{pid}\t{kb}\n" for name, samples in sorted(memory.items()) for at, pid, kb in samples]
    path.write_text("".join(lines))


async def main_async(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="llmgw-chaos-"))
    stack = ChaosStack(root)
    try:
        await stack.start()
        run = Run(args, stack)
        await run.make_keys()
        print(f"chaos: {args.rate:g} req/s for {args.seconds:g} s, seed {args.seed}, logs in {root}", flush=True)
        run.began = time.monotonic()
        stop = asyncio.Event()
        sampler = asyncio.create_task(run.sample_memory(stop))
        chaos = asyncio.create_task(run.chaos())
        await run.load()
        chaos.cancel()
        stop.set()
        await sampler
        stack.upstream.pause(False)
        found = await verify(run)
        write_memory(root / "memory.tsv", run.memory)  # (kept with --keep)
    finally:
        await stack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(table(run, found))
    return 0 if all(c.ok for c in found) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="seconds of load")
    parser.add_argument("--rate", type=float, default=20, help="requests/s")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the faults and the load mix")
    parser.add_argument("--interval", type=float, default=5, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=30, help="seconds of a process's life before its reference sample")
    parser.add_argument("--tolerance", type=float, default=15, help="allowed memory change, percent")
    parser.add_argument("--keep", action="store_true", help="keep the logs and stores")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds < 30:
        parser.error("need --rate > 0 and --seconds >= 30")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
