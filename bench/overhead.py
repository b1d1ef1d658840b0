"""Headline benchmark: what llmgw adds on top of its upstream.

Starts the fake OpenAI upstream and `llmgw up` (or uses --gateway-url), then sends the same
chat request (model bench-model, a short user message) directly to the upstream and through
llmgw, one after the other, in three phases, each after a short warm-up:
  1. closed loop, 64 connections: throughput and p50/p99 latency (non-streaming, max_tokens 16)
  2. open loop, 200 requests/s: p50/p99 latency and llmgw's overhead (non-streaming)
  3. open loop, 50 streams/s: time to first content chunk (streaming, max_tokens 32)
It prints a markdown table with the targets beside the numbers. It reports, it does not
assert: the exit status is 0 whenever it could measure, 1 if the gateway did not start.

Run: .venv/bin/python -m bench.overhead [--seconds 10] [--connections 64] [--rate 200]
         [--stream-rate 50] [--llmgw-cmd PATH] [--gateway-url http://127.0.0.1:4000]
         [--observe off|metrics|traced|sampled]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen
from bench.loadgen import LoadResult, chat_body
from bench.procs import free_port, start_fake_process, start_logged_process, stop_process, wait_ready

MASTER_KEY = "sk-bench"
UPSTREAM_KEY = "sk-upstream-bench"
MODEL = "bench-model"
READY_TIMEOUT_S = 60
GATEWAY_STOP_GRACE_S = 45
CHAT_PATH = "/v1/chat/completions"

TARGET_THROUGHPUT = 800  # req/s through llmgw at c=64
TARGET_P50_OVERHEAD_MS = 2.0  # at 200 req/s
TARGET_P99_OVERHEAD_MS = 10.0
TARGET_TTFC_OVERHEAD_MS = 3.0  # p50, streaming at 50/s

CONFIG_TEMPLATE = """\
model_list:
  - model_name: {model}
    params:
      model: openai/{model}
      api_base: http://127.0.0.1:{fake_port}/v1
      api_key: {upstream_key}
general_settings:
  master_key: {master_key}
"""


@dataclass
class Endpoint:
    label: str
    url: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def _log_tail(path: Path, lines: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def start_gateway(
    llmgw_cmd: str, fake_port: int, workdir: Path, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    """Run `llmgw up` with a config pointing at the fake upstream (and `env` added to its
    environment); returns (process, base URL) once ready."""
    config = workdir / "config.yaml"
    config.write_text(CONFIG_TEMPLATE.format(model=MODEL, fake_port=fake_port, upstream_key=UPSTREAM_KEY, master_key=MASTER_KEY))
    port = free_port()
    args = [*shlex.split(llmgw_cmd), "up", "--config", str(config), "--state-dir", str(workdir / "state")]
    args += ["--host", "127.0.0.1", "--port", str(port), "--nats-port", str(free_port())]
    # JSON log lines on the console (into the log file): bench/soak reads the supervisor's
    # `process_started` lines for the pids it samples.
    args += ["--log-format", "json"]
    log_path = workdir / "llmgw.log"
    print(f"starting: {shlex.join(args)}  (log: {log_path})", flush=True)
    proc = await start_logged_process(args, log_path, env={"LLMGW_MASTER_KEY": MASTER_KEY, **(env or {})})
    base_url = f"http://127.0.0.1:{port}"
    if not await wait_ready(f"{base_url}/health/ready", READY_TIMEOUT_S, proc):
        await stop_process(proc)
        raise RuntimeError("llmgw did not become ready; last log lines:\n" + _log_tail(log_path, 40))
    return proc, base_url


async def measure_pair(direct: Endpoint, through: Endpoint, warmup_s: float, run) -> tuple[LoadResult, LoadResult]:
    """`run(endpoint, seconds, label)` runs one load; each endpoint gets a warm-up, then the measured run."""
    results = []
    for endpoint in (direct, through):
        await run(endpoint, warmup_s, "warm-up")
        result = await run(endpoint, None, endpoint.label)
        print(result.summary(), flush=True)
        results.append(result)
    return results[0], results[1]


async def run_phases(direct: Endpoint, through: Endpoint, args: argparse.Namespace) -> str:
    warmup_s = min(2.0, args.seconds / 2)
    plain = chat_body(MODEL, 16)
    streaming = chat_body(MODEL, 32, stream=True)

    def closed(endpoint, seconds, label):
        return loadgen.closed_loop(
            endpoint.url, plain, connections=args.connections, seconds=seconds or args.seconds,
            headers=endpoint.headers, label=f"closed c={args.connections} {label}",
        )  # fmt: skip

    def open_plain(endpoint, seconds, label):
        return loadgen.open_loop(
            endpoint.url, plain, rate=args.rate, seconds=seconds or args.seconds,
            headers=endpoint.headers, label=f"open {args.rate:g}/s {label}",
        )  # fmt: skip

    def open_stream(endpoint, seconds, label):
        return loadgen.open_loop(
            endpoint.url, streaming, rate=args.stream_rate, seconds=seconds or args.seconds,
            headers=endpoint.headers, stream=True, label=f"stream {args.stream_rate:g}/s {label}",
        )  # fmt: skip

    closed_pair = await measure_pair(direct, through, warmup_s, closed)
    open_pair = await measure_pair(direct, through, warmup_s, open_plain)
    stream_pair = await measure_pair(direct, through, warmup_s, open_stream)
    return report(args, closed_pair, open_pair, stream_pair)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _overhead_row(phase: str, metric: str, a: float, b: float, target_ms: float | None) -> str:
    delta = b - a
    verdict = _verdict(delta < target_ms) if target_ms is not None else ""
    target = f"overhead < {target_ms:g} ms" if target_ms is not None else ""
    return f"| {phase} | {metric} | {a:.2f} | {b:.2f} | {delta:+.2f} ms (x{b / a:.2f}) | {target} | {verdict} |"


def report(args, closed_pair, open_pair, stream_pair) -> str:
    c_direct, c_through = closed_pair
    o_direct, o_through = open_pair
    s_direct, s_through = stream_pair
    closed_phase = f"closed c={args.connections}"
    open_phase = f"open {args.rate:g}/s"
    stream_phase = f"stream {args.stream_rate:g}/s"
    rows = [
        "| phase | metric | direct | through llmgw | overhead (ratio) | target | result |",
        "|---|---|---:|---:|---:|---|---|",
        f"| {closed_phase} | req/s | {c_direct.rps:.0f} | {c_through.rps:.0f} | | >= {TARGET_THROUGHPUT} req/s "
        f"| {_verdict(c_through.rps >= TARGET_THROUGHPUT)} |",
        _overhead_row(closed_phase, "p50 ms", c_direct.latency(50), c_through.latency(50), None),
        _overhead_row(closed_phase, "p99 ms", c_direct.latency(99), c_through.latency(99), None),
        _overhead_row(open_phase, "p50 ms", o_direct.latency(50), o_through.latency(50), TARGET_P50_OVERHEAD_MS),
        _overhead_row(open_phase, "p99 ms", o_direct.latency(99), o_through.latency(99), TARGET_P99_OVERHEAD_MS),
        _overhead_row(stream_phase, "TTFC p50 ms", s_direct.ttfc(50), s_through.ttfc(50), TARGET_TTFC_OVERHEAD_MS),
        _overhead_row(stream_phase, "TTFC p99 ms", s_direct.ttfc(99), s_through.ttfc(99), None),
    ]
    errors = [r for pair in (closed_pair, open_pair, stream_pair) for r in pair if r.errors]
    notes = [f"- errors in {r.label}: {r.errors} (e.g. {r.error_samples[0]})" for r in errors]
    notes.append(
        f"- {os.cpu_count()} cores shared by the load generator, the fake upstream and llmgw; "
        f"{args.seconds:g} s per measurement; 'FAIL' on a run with errors is not meaningful."
    )
    return "\n".join([*rows, "", *notes])


# --observe: what llmgw observes of itself while it is measured
OBSERVE_ENV = {
    "off": {"LLMGW_METRICS": "false", "LLMGW_TRACING": "false"},
    "metrics": {"LLMGW_TRACING": "false"},  # the default: metrics on, tracing off
    "traced": {},  # metrics on, and every process tracing to the OTLP sink
    # metrics on, and 5% of the requests traced (README's advice for high rates)
    "sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.05"},
}


async def start_observing(mode: str) -> tuple[dict[str, str], asyncio.subprocess.Process | None, int]:
    """The environment of `--observe mode`, and the OTLP sink it sends traces to (if any, and its port)."""
    env = dict(OBSERVE_ENV[mode])
    if mode not in ("traced", "sampled"):
        return env, None, 0
    sink_proc, sink_port = await start_fake_process(module="bench.otlp_sink")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
    return env, sink_proc, sink_port


async def sink_exports(port: int) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/_sink/stats") as answer:
        stats = await answer.json()
    return f"{stats['exports']} OTLP exports, {stats['bytes']} bytes"


async def main_async(args: argparse.Namespace) -> int:
    fake_proc, fake_port = await start_fake_process(api_key=UPSTREAM_KEY)
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-bench-"))
    gateway_proc = None
    env, sink_proc, sink_port = await start_observing(args.observe)
    try:
        direct = Endpoint("direct", f"http://127.0.0.1:{fake_port}{CHAT_PATH}", UPSTREAM_KEY)
        if args.gateway_url:
            gateway_url = args.gateway_url.rstrip("/")
        else:
            try:
                gateway_proc, gateway_url = await start_gateway(args.llmgw_cmd, fake_port, workdir, env)
            except (RuntimeError, OSError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        through = Endpoint("through llmgw", gateway_url + CHAT_PATH, args.gateway_key)
        table = await run_phases(direct, through, args)
    finally:
        if gateway_proc is not None:
            graceful, outcome = await stop_process(gateway_proc, GATEWAY_STOP_GRACE_S)
            print(f"llmgw {outcome}", flush=True)
            if not graceful:
                print(_log_tail(workdir / "llmgw.log", 15))
        await stop_process(fake_proc)
        if sink_proc is not None:
            print(f"traces: {await sink_exports(sink_port)}", flush=True)
            await stop_process(sink_proc)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nobserving: {args.observe} ({' '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'})")
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured time of each run")
    parser.add_argument("--connections", type=int, default=64, help="closed-loop connections")
    parser.add_argument("--rate", type=float, default=200, help="open-loop requests/s (non-streaming)")
    parser.add_argument("--stream-rate", type=float, default=50, help="open-loop streams/s")
    parser.add_argument("--llmgw-cmd", default=str(Path(sys.executable).parent / "llmgw"), help="command for llmgw")
    parser.add_argument("--gateway-url", default=None, help="bench this running gateway instead of starting one")
    parser.add_argument("--gateway-key", default=MASTER_KEY, help="bearer key sent to the gateway")
    parser.add_argument(
        "--observe",
        choices=tuple(OBSERVE_ENV),
        default="metrics",
        help="off: no metrics, no traces; metrics: the default; traced: metrics and OTLP traces of every request "
        "to a local sink; sampled: as traced, 5%% of the requests",
    )
    return loadgen.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
