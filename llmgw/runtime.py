"""Running a component's main coroutine: uvloop when present, SIGTERM/SIGINT set a stop event."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from llmgw.tracing import stop_tracing


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await main(stop)
        finally:
            stop_tracing()  # what spans are still queued are sent (see llmgw/tracing.py)

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())
