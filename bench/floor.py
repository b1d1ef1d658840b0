"""The floor: what the bare stack costs, with none of llmgw's work in it.

A minimal edge (a plain ASGI function on Granian, same settings as llmgw's edge) publishes each
chat request to a JetStream work queue and waits for the answer on its reply subject; a minimal
worker pulls with llmgw's `ContinuousPuller`, calls the fake upstream with llmgw's `UpstreamClient`
and publishes the answer (or, for a stream, each piece as it arrives) back on core NATS. No keys,
no parsing, no routing, no usage events, no logs. Whatever llmgw adds on top of this floor is its
own cost; what this floor adds on top of the upstream is the cost of the architecture on this
machine (two HTTP hops instead of one, two NATS hops).

Run:  .venv/bin/python -m bench.floor            (starts everything, then runs bench.overhead's
      phases against the floor instead of llmgw; same table)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bench import loadgen
from bench.overhead import CHAT_PATH, UPSTREAM_KEY, Endpoint, run_phases
from bench.procs import free_port, start_fake_process, start_logged_process, stop_process, wait_ready

FLOOR_PREFIX = "floor"
REPLY_HEADER = "Floor-Reply"
ID_HEADER = "Floor-Id"
DONE_HEADER = "Floor-Done"
FLOOR_PROCESSES = ("nats-server", "worker", "edge")  # what start_floor starts, in its order


def _subjects():
    from llmgw.contracts import Subjects

    return Subjects(FLOOR_PREFIX)


# ---------------------------------------------------------------- edge (one Granian worker)


def edge_app():
    """ASGI factory for Granian: the edge with nothing but the bus in it."""
    import itertools

    import nats

    from llmgw.bus import AckedPublisher

    subjects = _subjects()
    state: dict = {}
    ids = itertools.count()
    waiting: dict[str, asyncio.Queue] = {}

    async def on_reply(msg) -> None:
        queue = waiting.get(msg.headers[ID_HEADER])
        if queue is not None:
            queue.put_nowait(msg)

    async def startup() -> None:
        nc = await nats.connect(os.environ["FLOOR_NATS_URL"])
        publisher = AckedPublisher(nc)
        await publisher.start()
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=on_reply)
        state.update(nc=nc, publisher=publisher, inbox=inbox)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await startup()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["nc"].drain()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].startswith("/health"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request_id = str(next(ids))
        queue: asyncio.Queue = asyncio.Queue()
        waiting[request_id] = queue
        try:
            await state["publisher"].publish(
                subjects.request("openai"), body, headers={ID_HEADER: request_id, REPLY_HEADER: state["inbox"]}, timeout=5
            )
            first = await queue.get()
            stream = first.headers.get(DONE_HEADER) is None
            content_type = b"text/event-stream" if stream else b"application/json"
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
            if not stream:
                await send({"type": "http.response.body", "body": first.data})
                return
            msg = first
            while msg.headers.get(DONE_HEADER) is None:
                await send({"type": "http.response.body", "body": msg.data, "more_body": True})
                msg = await queue.get()
            await send({"type": "http.response.body", "body": msg.data})
        finally:
            waiting.pop(request_id, None)

    return app


# ---------------------------------------------------------------- worker


async def run_worker(nats_url: str, upstream: str, upstream_key: str) -> None:
    import httpx
    import nats

    from llmgw import bus
    from workers.http_client import UpstreamClient
    from workers.puller import ContinuousPuller

    subjects = _subjects()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    durable = subjects.worker_consumer("openai")
    await bus.ensure_pull_consumer(js, subjects.requests_stream, durable, subjects.request("openai"), 30, 1024)
    client = UpstreamClient(256)
    url = httpx.URL(upstream)
    headers = httpx.Headers({"authorization": f"Bearer {upstream_key}", "content-type": "application/json"})
    timeout = httpx.Timeout(30)
    in_flight: set[asyncio.Task] = set()

    async def handle(msg) -> None:
        reply, request_id = msg.headers[REPLY_HEADER], msg.headers[ID_HEADER]
        response = await client.send(client.request(url, headers, msg.data, timeout))
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                async for piece in client.chunks(response):
                    await nc.publish(reply, piece, headers={ID_HEADER: request_id})
                await nc.publish(reply, b"", headers={ID_HEADER: request_id, DONE_HEADER: "1"})
            else:
                body = await client.read(response)
                await nc.publish(reply, body, headers={ID_HEADER: request_id, DONE_HEADER: "1"})
        finally:
            await response.aclose()
        await msg.ack()

    def on_message(msg) -> None:
        task = asyncio.create_task(handle(msg))
        in_flight.add(task)
        task.add_done_callback(lambda t: (in_flight.discard(t), puller.capacity_freed()))

    puller = ContinuousPuller(nc, subjects.requests_stream, durable, 256, lambda: len(in_flight), on_message)
    await puller.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- orchestration


async def start_floor(fake_port: int, workdir: Path) -> tuple[list[asyncio.subprocess.Process], str]:
    import nats

    from llmgw import bus
    from llmgw_cli.preflight import nats_server_binary

    nats_port, http_port = free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    procs = [
        await start_logged_process(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", str(workdir / "nats")],
            workdir / "nats.log",
        )
    ]
    for _ in range(100):
        try:
            nc = await nats.connect(nats_url, allow_reconnect=False)
            break
        except Exception:
            await asyncio.sleep(0.05)
    else:
        raise RuntimeError("nats-server did not start")
    await bus.ensure_request_stream(nc.jetstream(), _subjects())
    await nc.close()
    upstream = f"http://127.0.0.1:{fake_port}{CHAT_PATH}"
    procs.append(
        await start_logged_process(
            [sys.executable, "-m", "bench.floor", "worker", nats_url, upstream],
            workdir / "worker.log",
        )
    )
    procs.append(
        await start_logged_process(
            [sys.executable, "-m", "bench.floor", "edge", str(http_port)],
            workdir / "edge.log",
            env={"FLOOR_NATS_URL": nats_url},
        )
    )
    base = f"http://127.0.0.1:{http_port}"
    if not await wait_ready(f"{base}/health", 30, procs[-1]):
        for proc in reversed(procs):
            await stop_process(proc, 5)
        raise RuntimeError("the floor edge did not start; see " + str(workdir))
    return procs, base


def serve_edge(port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    Granian(
        "bench.floor:edge_app",
        factory=True,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_enabled=False,
    ).serve()


async def main_async(args: argparse.Namespace) -> int:
    fake_proc, fake_port = await start_fake_process(api_key=UPSTREAM_KEY)
    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory(prefix="llmgw-floor-") as tmp:
        try:
            procs, base = await start_floor(fake_port, Path(tmp))
            direct = Endpoint("direct", f"http://127.0.0.1:{fake_port}{CHAT_PATH}", UPSTREAM_KEY)
            through = Endpoint("through the floor", base + CHAT_PATH, "unused")
            table = await run_phases(direct, through, args)
        finally:
            for proc in reversed(procs):
                await stop_process(proc, 5)
            await stop_process(fake_proc)
    print()
    print(table.replace("through llmgw", "through the floor"))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["edge"]:
        serve_edge(int(argv[1]))
        return 0
    if argv[:1] == ["worker"]:
        asyncio.run(run_worker(argv[1], argv[2], UPSTREAM_KEY))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured time of each run")
    parser.add_argument("--connections", type=int, default=64, help="closed-loop connections")
    parser.add_argument("--rate", type=float, default=200, help="open-loop requests/s (non-streaming)")
    parser.add_argument("--stream-rate", type=float, default=50, help="open-loop streams/s")
    return loadgen.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
