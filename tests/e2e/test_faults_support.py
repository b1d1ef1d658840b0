"""Helpers shared by the fault tests (tests/e2e/test_faults_*.py); it holds no tests itself.

Every fault test runs the gateway as production does (edge, worker(s) and metering as separate
processes on a real nats-server) in front of the fake OpenAI upstream, whose model names choose
the fault. Each model group below maps to one fake model, so the fake's per-model counters tell
how many upstream calls a test caused.
"""

from __future__ import annotations

import signal

import httpx
import nats

from llmgw.contracts import Subjects
from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream, Proc, log_events
from tests.waiting import eventually_sync

HELLO = [{"role": "user", "content": "Hello there"}]
HELLO_PROMPT_TOKENS = 3  # at the fake: 2 words + 1 message
HELLO_ESTIMATED_PROMPT_TOKENS = (len("Hello there") + 3) // 4  # the worker's 4-characters-a-token estimate

# model group -> (fake model, extra deployment params)
GROUPS: dict[str, tuple[str, dict[str, str]]] = {
    "gpt-4": ("gpt-4o", {}),
    "slow-kill": ("fake-slow-8000", {}),  # long enough to kill the worker calling it
    "drip-kill": ("fake-chunk-delay-300", {}),
    "slow-term": ("fake-slow-6000", {}),
    "drip-term": ("fake-chunk-delay-300", {}),
    "drip-gone": ("fake-chunk-delay-250", {}),
    "drip-edge": ("fake-chunk-delay-100", {}),
    "hang-1s": ("fake-hang", {"timeout": "1"}),
    "stall-1s": ("fake-chunk-delay-3000", {"stream_timeout": "1"}),
}


def fault_config(upstream: FakeUpstream) -> str:
    lines = ["model_list:"]
    for group, (model, params) in GROUPS.items():
        lines += [
            f"  - model_name: {group}",
            "    params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
            *(f"      {name}: {value}" for name, value in params.items()),
        ]
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY"]
    return "\n".join(lines) + "\n"


def upstream_calls(upstream: FakeUpstream, group: str) -> int:
    """Calls the fake has had for the fake model behind `group`."""
    return upstream.stats()["by_model"].get(GROUPS[group][0], 0)


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {MASTER_KEY}"}


def chat(stack: Stack, group: str, max_tokens: int, timeout: float = 60) -> httpx.Response:
    """A whole (non-streamed) chat completion, as the client sees it."""
    return httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        json={"model": group, "messages": HELLO, "max_tokens": max_tokens},
        headers=headers(),
        timeout=timeout,
    )


def open_stream(client: httpx.Client, stack: Stack, group: str, max_tokens: int, include_usage: bool = False):
    """A streamed chat completion (a context manager yielding the httpx response)."""
    body: dict = {"model": group, "messages": HELLO, "max_tokens": max_tokens, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return client.stream("POST", f"{stack.base_url}/v1/chat/completions", json=body, headers=headers())


def words(n: int) -> str:
    """The fake's answer of n tokens."""
    return " ".join(f"w{i}" for i in range(n))


def worker_started(proc: Proc) -> bool:
    return bool(log_events(proc.output(), "worker_started"))


def start_named_worker(stack: Stack, worker_id: str, **env: str) -> Proc:
    worker = stack.start_worker(LLMGW_WORKER_ID=worker_id, **env)
    eventually_sync(lambda: worker_started(worker), f"worker {worker_id} to start", timeout=30)
    return worker


def terminate(proc: Proc) -> None:
    """SIGTERM only: the process decides how to end (a graceful stop)."""
    proc.popen.send_signal(signal.SIGTERM)


def row_count(stack: Stack, request_id: str) -> int:
    """Rows stored for one request, counted before ReplacingMergeTree merges (a double would show)."""
    rows = stack.query("SELECT count() AS n FROM usage WHERE request_id = {id:String}", {"id": request_id})
    return int(rows[0]["n"])


async def queues_empty(nats_url: str, prefix: str) -> bool:
    """Every request that reached JetStream has been served and acked, and every usage message
    stored and acked."""
    subjects = Subjects(prefix)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        work = await js.consumer_info(subjects.requests_stream, subjects.worker_consumer("openai"))
        meter = await js.consumer_info(subjects.usage_stream, subjects.metering_consumer)
    finally:
        await nc.close()
    return not (work.num_pending or work.num_ack_pending or meter.num_pending or meter.num_ack_pending)
