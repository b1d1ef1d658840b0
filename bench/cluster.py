"""llmgw on a 3-node NATS cluster that loses the leader of its request stream under load.

    python -m bench.cluster [--seconds-before 4] [--seconds-after 8] [--clients 6]

Runs on loopback: a 3-node NATS cluster (bench/nats_cluster.py; streams, KV buckets and object
stores with 3 replicas), two edges, two workers and metering (chdb) as separate processes, every
one given all three server URLs, in front of the fake OpenAI upstream. Clients send chat
completions (half of them streamed) to both edges at a steady pace; the node leading the request stream
(`$JS.API.STREAM.INFO.<stream>` -> cluster.leader) is killed (SIGKILL), the load goes on until
requests succeed again, the node is started again (it rejoins), the load goes on a little, then
stops. Printed: requests sent / answered / 503s, the longest run of 503s, usage rows against
answered requests (by request id), the time to heal and to rejoin. `tests/e2e/test_cluster.py`
runs the same scenario, shorter, and asserts on its outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats

from bench.nats_cluster import NatsCluster
from bench.procs import free_port, start_fake_process, start_logged_process, stop_process, wait_ready
from llmgw.contracts import QueryRequest, Subjects, decode_query_result, encode_json

MASTER_KEY = "sk-cluster-master-0001"
UPSTREAM_KEY = "sk-cluster-upstream-0001"
REPLICAS = 3
CONFIG = """model_list:
  - model_name: gpt-4
    params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:{port}/v1
      api_key: os.environ/CLUSTER_UPSTREAM_KEY
general_settings:
  master_key: os.environ/CLUSTER_MASTER_KEY
"""
UNAVAILABLE = {
    "message": "the gateway's message bus is unavailable; retry shortly",
    "type": "service_unavailable_error",
    "param": None,
    "code": "service_unavailable",
}


def words(n: int) -> str:
    """The fake's answer of n tokens."""
    return " ".join(f"w{i}" for i in range(n))


@dataclass(frozen=True)
class Answer:
    began: float
    ended: float
    status: int  # 0: no HTTP answer (connection error, client timeout)
    request_id: str
    whole: bool  # a 200 with the full expected content, or a 503 with the expected error and retry-after
    edge: int


@dataclass
class Outcome:
    answers: list[Answer] = field(default_factory=list)
    killed: str = ""
    killed_at: float = 0.0
    restarted_at: float = 0.0
    rejoin_s: float = 0.0
    rows: dict[str, Counter] = field(default_factory=dict)  # request id -> status -> rows
    processes_alive: bool = False
    leader_after: str = ""
    replicas_current: int = 0
    stream_replicas: dict[str, int] = field(default_factory=dict)  # every stream of the run's prefix
    led_by_killed: list[str] = field(default_factory=list)  # the streams the killed node led
    key_seen_s: float = float("inf")  # a key made on one edge after the kill, until the other took it

    @property
    def answered(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]

    @property
    def unavailable(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 503]

    @property
    def others(self) -> list[Answer]:
        return [a for a in self.answers if a.status not in (200, 503)]

    def longest_503_run(self) -> tuple[int, float]:
        """The most 503s answered in a row (by answer time) and the seconds they spanned."""
        best, best_span, run, first = 0, 0.0, 0, 0.0
        for answer in sorted(self.answers, key=lambda a: a.ended):
            if answer.status == 503:
                run, first = run + 1, first if run else answer.ended
                if run > best or (run == best and answer.ended - first > best_span):
                    best, best_span = run, answer.ended - first
            else:
                run = 0
        return best, best_span

    def heal_s(self) -> float:
        """From the kill to the first 200 of a request begun after the last failure (or after
        the kill, when none failed)."""
        failures = [a.ended for a in self.answers if a.status != 200 and a.ended >= self.killed_at]
        after = max(failures, default=self.killed_at)
        healed = [a.ended for a in self.answered if a.began >= after]
        return (min(healed) - self.killed_at) if healed else float("inf")

    def answered_rows(self) -> tuple[int, int, int]:
        """(answered requests with exactly one success row, with none, with more than one)."""
        one = missing = doubled = 0
        for answer in self.answered:
            n = self.rows.get(answer.request_id, Counter())["success"]
            one, missing, doubled = one + (n == 1), missing + (n == 0), doubled + (n > 1)
        return one, missing, doubled

    def refused_but_run(self) -> int:
        """503s whose request was run after all (a success row): billed, for nobody."""
        return sum(1 for a in self.unavailable if self.rows.get(a.request_id, Counter())["success"])

    def report(self) -> str:
        run, span = self.longest_503_run()
        one, missing, doubled = self.answered_rows()
        lines = [
            f"killed            {self.killed} (leader of the request stream)",
            f"requests sent     {len(self.answers)}",
            f"answered (200)    {len(self.answered)} ({sum(not a.whole for a in self.answered)} incomplete)",
            f"503s              {len(self.unavailable)} ({sum(not a.whole for a in self.unavailable)} not clean)",
            f"other failures    {len(self.others)} {dict(Counter(a.status for a in self.others))}",
            f"longest 503 run   {run} requests over {span:.2f} s",
            f"slowest 200       {max((a.ended - a.began for a in self.answered), default=0.0):.2f} s",
            f"usage rows        {one} of {len(self.answered)} answered have one row; {missing} missing, {doubled} doubled",
            f"503s run anyway   {self.refused_but_run()}",
            f"time to heal      {self.heal_s():.2f} s after the kill",
            f"node rejoined     {self.rejoin_s:.2f} s after its restart; new leader {self.leader_after}, "
            f"{self.replicas_current} replicas current",
            f"streams it led    {len(self.led_by_killed)} of {len(self.stream_replicas)}",
            f"KV watches        a key made on edge 0 after the kill worked on edge 1 {self.key_seen_s:.2f} s later",
            f"llmgw processes   {'all alive, never restarted' if self.processes_alive else 'SOME DIED'}",
        ]
        return "\n".join(lines)


class ClusterRun:
    """The processes of one run: the cluster, the fake upstream and llmgw's five processes."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        self.cluster = NatsCluster(root / "nats")
        self.subjects = Subjects(prefix)
        self.procs: list[asyncio.subprocess.Process] = []
        self.edges: list[str] = []
        self.fake: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.cluster.start)
        self.fake, fake_port = await start_fake_process(UPSTREAM_KEY)
        (self.root / "config.yaml").write_text(CONFIG.format(port=fake_port))
        await self._start("metering", "metering", {})
        for i in range(2):
            await self._start(f"worker-{i}", "workers", {"LLMGW_WORKER_ID": f"w{i}"})
        for i in range(2):
            port = free_port()
            await self._start(f"edge-{i}", "gateway", {"LLMGW_PORT": str(port)})
            self.edges.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(self.edges, self.procs[-2:], strict=True):
            if not await wait_ready(f"{url}/health/ready", 60, proc):
                raise RuntimeError(f"edge {url} did not become ready (see {self.root})")
        started = {"metering": "metering_ready", "worker-0": "worker_started", "worker-1": "worker_started"}
        deadline = time.monotonic() + 60
        while not all(f'"event":"{event}"' in (self.root / f"{name}.log").read_text() for name, event in started.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"metering or a worker did not start (see {self.root})")
            await asyncio.sleep(0.2)

    def env(self) -> dict[str, str]:
        return {
            "LLMGW_CONFIG": str(self.root / "config.yaml"),
            "LLMGW_NATS_URL": self.cluster.urls,
            "LLMGW_NATS_REPLICAS": str(REPLICAS),
            "LLMGW_BUS_PREFIX": self.subjects.prefix,
            "LLMGW_CLICKHOUSE_URL": f"chdb:///{self.root / 'clickhouse'}",
            "LLMGW_HOST": "127.0.0.1",
            "LLMGW_REQUEST_TIMEOUT": "30",
            "LLMGW_METERING_FLUSH_INTERVAL": "0.2",
            "LLMGW_METRICS": "false",
            "CLUSTER_UPSTREAM_KEY": UPSTREAM_KEY,
            "CLUSTER_MASTER_KEY": MASTER_KEY,
        }

    async def _start(self, name: str, module: str, env: dict[str, str]) -> None:
        args = [sys.executable, "-m", module]
        self.procs.append(await start_logged_process(args, self.root / f"{name}.log", {**self.env(), **env}))

    async def stream_leader(self) -> tuple[str, int]:
        """The request stream's leader and how many of its followers are current."""
        nc = await nats.connect(self.cluster.urls.split(","), connect_timeout=2, max_reconnect_attempts=1)
        try:
            info = await nc.jetstream().stream_info(self.subjects.requests_stream)
        finally:
            await nc.close()
        cluster = info.cluster
        if cluster is None or not cluster.leader:
            raise RuntimeError("the request stream has no leader")
        return cluster.leader, sum(1 for peer in cluster.replicas or [] if peer.current and not peer.offline)

    async def rows(self, request_ids: list[str]) -> dict[str, Counter]:
        """Usage rows by request id and status, counted before ReplacingMergeTree merges (a double shows)."""
        sql = "SELECT request_id, status, count() AS n FROM usage WHERE request_id IN {ids:Array(String)} GROUP BY request_id, status"
        nc = await nats.connect(self.cluster.urls.split(","), connect_timeout=2)
        try:
            msg = await nc.request(self.subjects.metering_query, encode_json(QueryRequest(sql, {"ids": request_ids})), timeout=20)
        finally:
            await nc.close()
        result = decode_query_result(msg.data)
        if result.error:
            raise RuntimeError(result.error)
        found: dict[str, Counter] = {}
        for request_id, status, n in result.rows:
            found.setdefault(request_id, Counter())[status] += int(n)
        return found

    async def leaders(self) -> dict[str, str]:
        """Each stream of the run's prefix and the node leading it."""
        nc = await nats.connect(self.cluster.urls.split(","), connect_timeout=2)
        try:
            streams = await nc.jetstream().streams_info()
        finally:
            await nc.close()
        ours = self.subjects.requests_stream.removesuffix("REQUESTS")
        return {s.config.name: s.cluster.leader or "" for s in streams if s.config.name and ours in s.config.name and s.cluster}

    async def key_travels(self) -> float:
        """Seconds from a key made on edge 0 until edge 1 answers a request made with it (its
        keys bucket's watch is alive)."""
        admin = {"Authorization": f"Bearer {MASTER_KEY}"}
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 3}
        async with httpx.AsyncClient(timeout=10) as client:
            made = await client.post(f"{self.edges[0]}/key/generate", json={"models": ["gpt-4"]}, headers=admin)
            made.raise_for_status()
            began, key = time.monotonic(), made.json()["key"]
            for _ in range(200):  # (20 s at most)
                used = await client.post(
                    f"{self.edges[1]}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                )
                if used.status_code == 200:
                    return time.monotonic() - began
                await asyncio.sleep(0.1)
        return float("inf")

    async def stream_replicas(self) -> dict[str, int]:
        """The replica count of every stream llmgw made (its streams, KV buckets and object stores)."""
        nc = await nats.connect(self.cluster.urls.split(","), connect_timeout=2)
        try:
            streams = await nc.jetstream().streams_info()
        finally:
            await nc.close()
        ours = self.subjects.requests_stream.removesuffix("REQUESTS")  # <PREFIX>_, in every stream's name
        return {s.config.name: s.config.num_replicas or 1 for s in streams if s.config.name and ours in s.config.name}

    async def queues_empty(self) -> bool:
        nc = await nats.connect(self.cluster.urls.split(","), connect_timeout=2)
        try:
            js = nc.jetstream()
            work = await js.consumer_info(self.subjects.requests_stream, self.subjects.worker_consumer("openai"))
            meter = await js.consumer_info(self.subjects.usage_stream, self.subjects.metering_consumer)
        finally:
            await nc.close()
        return not (work.num_pending or work.num_ack_pending or meter.num_pending or meter.num_ack_pending)

    async def stop(self) -> None:
        for proc in reversed(self.procs):
            await stop_process(proc)
        if self.fake is not None:
            await stop_process(self.fake)
        await asyncio.to_thread(self.cluster.stop)


async def client_loop(edges: list[str], index: int, pause: float, stop: asyncio.Event, out: list[Answer]) -> None:
    """One client: a chat completion (streamed for every other pair of clients), a pause, again,
    on edge `index % 2`, until `stop`."""
    edge = index % len(edges)
    stream = index // 2 % 2 == 1
    n = 0
    async with httpx.AsyncClient(base_url=edges[edge], timeout=40, headers={"Authorization": f"Bearer {MASTER_KEY}"}) as client:
        while not stop.is_set():
            n += 1
            tokens = 3 + (index + n) % 6
            began = time.monotonic()
            try:
                response = await client.post(
                    "/v1/chat/completions",
                    json={
                        "model": "gpt-4",
                        "messages": [{"role": "user", "content": "Hello there"}],
                        "max_tokens": tokens,
                        "stream": stream,
                    },
                )
            except httpx.HTTPError:
                out.append(Answer(began, time.monotonic(), 0, "", False, edge))
                continue
            out.append(
                Answer(
                    began,
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("x-request-id", ""),
                    _whole(response, tokens),
                    edge,
                )
            )
            await asyncio.sleep(pause)


def _whole(response: httpx.Response, tokens: int) -> bool:
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
        return _stream_whole(response.text, tokens)
    try:
        body = response.json()
    except ValueError:
        return False
    if response.status_code == 200:
        return body["choices"][0]["message"]["content"] == words(tokens)
    if response.status_code == 503:
        return body == {"error": UNAVAILABLE} and response.headers.get("retry-after") == "1"
    return False


def _stream_whole(body: str, tokens: int) -> bool:
    """A streamed answer with every word, in order, and its end."""
    events = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return False
    text = []
    for data in events[:-1]:
        chunk = json.loads(data)
        if "error" in chunk:
            return False
        text += [choice.get("delta", {}).get("content") or "" for choice in chunk.get("choices", [])]
    return "".join(text) == words(tokens)


async def run_scenario(root: Path, prefix: str, before: float, after: float, clients: int, pause: float = 0.05) -> Outcome:
    """The whole scenario; the processes are stopped at the end, whatever happens."""
    run = ClusterRun(root, prefix)
    outcome = Outcome()
    stop = asyncio.Event()
    try:
        await run.start()
        loops = [asyncio.create_task(client_loop(run.edges, i, pause, stop, outcome.answers)) for i in range(clients)]
        pids = [p.pid for p in run.procs]
        await asyncio.sleep(before)
        outcome.killed, _ = await run.stream_leader()
        outcome.led_by_killed = sorted(name for name, leader in (await run.leaders()).items() if leader == outcome.killed)
        node = run.cluster.node(outcome.killed)
        outcome.killed_at = time.monotonic()
        node.kill()
        for _ in range(300):  # (60 s at most) until requests succeed again
            if outcome.heal_s() != float("inf"):
                break
            await asyncio.sleep(0.2)
        outcome.key_seen_s = await run.key_travels()
        await asyncio.sleep(after / 2)
        outcome.restarted_at = time.monotonic()
        await asyncio.to_thread(run.cluster.restart, node)
        while True:  # until the restarted node is a current replica of the request stream again
            outcome.leader_after, outcome.replicas_current = await run.stream_leader()
            if outcome.replicas_current == REPLICAS - 1 or time.monotonic() > outcome.restarted_at + 60:
                break
            await asyncio.sleep(0.2)
        outcome.rejoin_s = time.monotonic() - outcome.restarted_at
        await asyncio.sleep(after / 2)
        stop.set()
        await asyncio.gather(*loops)
        outcome.processes_alive = [p.pid for p in run.procs] == pids and all(p.returncode is None for p in run.procs)
        await _settle(run, outcome)
        outcome.stream_replicas = await run.stream_replicas()
    finally:
        stop.set()
        await run.stop()
    return outcome


async def _settle(run: ClusterRun, outcome: Outcome) -> None:
    """Wait for every queue to drain and every answered request's row, then count the rows."""
    ids = [a.request_id for a in outcome.answers if a.request_id]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if await run.queues_empty():
                outcome.rows = await run.rows(ids)
                if all(outcome.rows.get(a.request_id) for a in outcome.answered):
                    break
        except Exception as exc:  # (metering or the bus still settling)
            print(f"  (settling: {type(exc).__name__}: {exc})", flush=True)
        await asyncio.sleep(0.5)
    outcome.rows = await run.rows(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-before", type=float, default=4.0, help="load before the kill")
    parser.add_argument("--seconds-after", type=float, default=8.0, help="load after healing (half before the node's restart)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients (half on each edge)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="llmgw-cluster-"))
    print(f"run directory: {root}", flush=True)
    try:
        outcome = asyncio.run(run_scenario(root, "cluster", args.seconds_before, args.seconds_after, args.clients))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(outcome.report())
    print(json.dumps({"sent": len(outcome.answers), "answered": len(outcome.answered), "unavailable": len(outcome.unavailable)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
