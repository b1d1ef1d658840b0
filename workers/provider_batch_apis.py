"""Which adapter family speaks which provider batch API (the modules are imported on first use,
so a worker loads only the adapters its deployments need)."""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ProviderBatchCall
from workers.usage import Usage


class LineOutcome(msgspec.Struct, frozen=True):
    """One line of the provider's results: its index in the gateway's batch, its status, its
    answer in OpenAI's format (JSON), and the tokens the provider reported for it."""

    index: int
    status: int
    body: bytes
    usage: Usage | None
    ran: bool = True  # False: the provider never ran it (cancelled, expired): no usage row


LINE_OVERHEAD = 128  # bytes a line's result takes on the bus besides its body


def results_page(lines: list[LineOutcome], start: int, max_bytes: int) -> tuple[list[LineOutcome], int]:
    """The lines from index `start` (in index order) whose bodies fit `max_bytes` (at least one),
    and the index the next page starts at (-1: none left)."""
    ordered = sorted((line for line in lines if line.index >= start), key=lambda line: line.index)
    page: list[LineOutcome] = []
    size = 0
    for line in ordered:
        size += len(line.body) + LINE_OVERHEAD
        if page and max_bytes and size > max_bytes:
            return page, line.index
        page.append(line)
    return page, -1


class _OpenAI:
    @staticmethod
    async def submit(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> str:
        from workers.providers import openai_batches

        return await openai_batches.submit(adapter, deployment, call.batch_id, call.endpoint, call.lines, call.upstream_model)

    @staticmethod
    async def poll(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> str:
        from workers.providers import openai_batches

        return (await openai_batches.poll(adapter, deployment, call.provider_batch_id))[0]

    @staticmethod
    async def results(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> list[LineOutcome]:
        from workers.providers import openai_batches

        return await openai_batches.results(adapter, deployment, call.provider_batch_id)

    @staticmethod
    async def cancel(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> None:
        from workers.providers import openai_batches

        await openai_batches.cancel(adapter, deployment, call.provider_batch_id)

    @staticmethod
    async def find(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> str:
        from workers.providers import openai_batches

        return await openai_batches.find(adapter, deployment, call.batch_id)


class _Anthropic:
    @staticmethod
    async def submit(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> str:
        from workers.providers.anthropic import batches

        return await batches.submit(adapter, deployment, call.batch_id, call.lines, call.upstream_model)

    @staticmethod
    async def poll(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> str:
        from workers.providers.anthropic import batches

        return (await batches.poll(adapter, deployment, call.provider_batch_id, call.upstream_model))[0]

    @staticmethod
    async def results(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> list[LineOutcome]:
        from workers.providers.anthropic import batches

        return await batches.results(adapter, deployment, call.provider_batch_id, call.upstream_model)

    @staticmethod
    async def cancel(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> None:
        from workers.providers.anthropic import batches

        await batches.cancel(adapter, deployment, call.provider_batch_id, call.upstream_model)

    @staticmethod
    async def find(adapter: Any, deployment: Deployment, call: ProviderBatchCall) -> str | None:
        """Message batches carry no metadata: a submit cut short cannot be found (None)."""
        return None


BATCH_APIS: dict[str, Any] = {"openai": _OpenAI, "anthropic": _Anthropic}

__all__ = ["BATCH_APIS", "LineOutcome", "results_page"]
