"""`POST /v1/images/generations`, `POST /v1/moderations` and `POST /v1/rerank` (also `/rerank` and
Cohere's `/v2/rerank`): whole answers, through the one pipeline.

Each route reads its body (gateway/media_schemas.py) and says what the request may cost at
worst: images by count, size and quality (or, for token-billed models, their image output
tokens), a moderation by its input, a rerank by the search units Cohere would bill (token-metered
rerank servers by the body's size). Answers are the worker's: OpenAI's image and moderation
objects as the upstream wrote them, and rerank results in Cohere's v2 shape from every provider.
"""

from __future__ import annotations

from litestar.handlers import asgi

from gateway.asgi_io import Receive, Scope, Send
from gateway.auth import Principal
from gateway.edge import Edge
from gateway.media_schemas import ImageGenerationRequest, parse_images, parse_moderation, parse_rerank, worst_search_units
from gateway.openai_api import OPENAI_STREAM, OpenAIStream, openai_paths
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Incoming, Route, Target
from llmgw.contracts import Operation, Units
from llmgw.image_units import image_output_tokens, image_units


class WholeAnswerRoute(Route):
    """A route whose answers are never streamed."""

    def stream(self, call: Call, request_id: str) -> OpenAIStream:
        return OPENAI_STREAM


class ImagesRoute(WholeAnswerRoute):
    operation = Operation.IMAGES

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        parsed = parse_images(body)
        call = Call(parsed.model, body, n=parsed.n or 1, timeout=parsed.timeout)
        call.state = parsed
        return call

    def target(self, edge: Edge, principal: Principal, call: Call) -> Target:
        """The worst case depends on the model the group calls (dall-e's sizes, gpt-image's tokens)."""
        target = super().target(edge, principal, call)
        parsed: ImageGenerationRequest = call.state
        upstream = target.candidates[0].upstream_model_for(target.model_group) if target.candidates else call.model
        call.units = image_units(upstream, call.n, parsed.size, parsed.quality)
        call.max_tokens = image_output_tokens(upstream, parsed.size, parsed.quality)
        return target


class ModerationsRoute(WholeAnswerRoute):
    operation = Operation.MODERATION

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        parsed = parse_moderation(body)
        return Call(parsed.model, body, timeout=parsed.timeout)


class RerankRoute(WholeAnswerRoute):
    operation = Operation.RERANK

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        parsed, documents, sent = parse_rerank(body)
        units = Units(search_units=worst_search_units(parsed.query, documents, parsed.max_tokens_per_doc))
        return Call(parsed.model, sent, units=units, timeout=parsed.timeout)


IMAGES = ImagesRoute()
MODERATIONS = ModerationsRoute()
RERANK = RerankRoute()


@asgi(openai_paths("images/generations"), copy_scope=False)
async def images_generations(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, IMAGES)


@asgi(openai_paths("moderations"), copy_scope=False)
async def moderations(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, MODERATIONS)


@asgi([*openai_paths("rerank"), "/v2/rerank"], copy_scope=False)
async def rerank(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, RERANK)


ROUTES = [images_generations, moderations, rerank]
