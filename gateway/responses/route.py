"""`POST /v1/responses`: OpenAI's Responses API for any configured model.

A deployment that speaks the Responses API (provider `openai` and `azure`, or any OpenAI-family
deployment with `responses_api: true`; `responses_api: false` opts one out) gets the request as it
came (`Operation.RESPONSES`) and its answer is relayed as it comes; every other deployment gets it
translated to chat completions and its answer translated back. Fallbacks go only to deployments of
the same kind. A stored conversation (`previous_response_id`) is put before the new input by the
edge, whichever the kind, and the upstream is told not to store anything (`store: false`): the
gateway keeps the responses (gateway.responses.store), so its ids work on every provider.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.handlers import asgi

from gateway.asgi_io import SSE_HEADERS, Receive, Scope, Send
from gateway.auth import Principal
from gateway.edge import Edge
from gateway.openai_api import openai_paths
from gateway.pipeline import pipeline_of
from gateway.responses.background import BackgroundResponse
from gateway.responses.items import Item, conversation_items, input_items
from gateway.responses.native import Echo, NativeResponsesStream, whole_native_answer
from gateway.responses.reply import chat_completion_to_response
from gateway.responses.request import ResponsesRequest, bad_request, parse_responses_request
from gateway.responses.store import ResponseStore, new_record
from gateway.responses.stream import ResponsesStreamTranslator
from gateway.responses.to_chat import Located, responses_to_chat_body
from gateway.responses.wire import response_id_for
from gateway.routes import Call, Headers, Incoming, Route, Target
from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from llmgw.contracts import Caller, Chunks, Completed, ErrorCode, Operation

_encoder = msgspec.json.Encoder()

RESPONSES_PROVIDERS = ("openai", "azure")  # deployments of these speak the Responses API unless told otherwise
_FAMILIES = ("openai", "azure")  # the adapters that can forward it
_TRUE = ("1", "true", "yes", "on")
_TRUE_JSON = msgspec.Raw(b"true")


def speaks_responses(deployment: Deployment) -> bool:
    """Whether a deployment gets Responses requests as they are (`params.responses_api`, by
    default true for OpenAI and Azure OpenAI) rather than translated to chat completions."""
    if PROVIDERS[deployment.provider].family not in _FAMILIES:
        return False
    flag = deployment.option("responses_api")
    if flag is None:
        return deployment.provider in RESPONSES_PROVIDERS
    return flag is True or str(flag).strip().lower() in _TRUE


class ResponsesCall:
    """What the route knows of one request, from `parse` to `answered` (the call's `state`)."""

    __slots__ = (
        "background",
        "caller",
        "chat_body",
        "fields",
        "history",
        "input",
        "kept",
        "native",
        "previous",
        "request",
        "store",
    )

    def __init__(
        self, request: ResponsesRequest, fields: dict[str, msgspec.Raw], items: list[Item], store: ResponseStore
    ) -> None:
        self.request = request
        self.fields = fields
        self.input = items  # this request's own input items
        self.store = store
        self.caller: Caller | None = None
        self.history: list[Item] = []  # the stored conversation it continues
        self.previous: list[str] = []  # ids of the responses of that conversation, oldest first
        self.native = False
        self.chat_body = b""
        self.kept: str | None = None  # the id of the response being stored
        self.background: BackgroundResponse | None = None  # `background: true`: its job

    def native_body(self) -> bytes:
        """The body a Responses deployment gets: the conversation before the input, nothing stored
        upstream, no `previous_response_id` (the upstream would not know it)."""
        fields: dict[str, Any] = dict(self.fields)
        if self.history:
            fields["input"] = [*self.history, *self.input]
        fields.pop("previous_response_id", None)
        fields["store"] = False
        if self.request.background:  # the gateway runs it in the background; the upstream streams it
            del fields["background"]
            fields["stream"] = _TRUE_JSON
        return _encoder.encode(fields)

    def echo(self) -> Echo:
        background = self.background
        if background is None:
            return Echo(self.request.stored, self.request.previous_response_id)
        return Echo(self.request.stored, self.request.previous_response_id, background.key, True)

    def located(self) -> list[Located]:
        return [(item, "previous_response_id") for item in self.history] + [
            (item, f"input[{i}]") for i, item in enumerate(self.input)
        ]

    def keep(self, response: dict[str, Any] | None) -> None:
        """Store the answered response (when the client asked to): the write starts now."""
        if self.background is not None:  # its job keeps its records
            if response is not None and self.background.final is None:
                self.background.final = response
            return
        if response is None or not self.request.stored or self.caller is None or self.kept is not None:
            return
        record = new_record(response, self.caller, self.previous, self.input)
        self.kept = record.id
        self.store.keep(record)


class TranslatedStream:
    """The worker's chat chunks as Responses events; the final response is stored as it ends."""

    __slots__ = ("state", "translator")

    def __init__(self, state: ResponsesCall, model: str, request_id: str) -> None:
        self.state = state
        self.translator = ResponsesStreamTranslator(state.request, model, response_id_for(request_id))
        if state.background is not None:  # (the same events whichever edge writes them: a takeover)
            self.translator.created_at = int(state.background.created_at)

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return 200, list(SSE_HEADERS)

    def data(self, chunks: list[bytes]) -> bytes:
        out = b"".join([self.translator.feed(d) for d in chunks])
        if self.translator.final is not None:
            self.state.keep(self.translator.final)
        return out

    def end(self) -> bytes:
        out = self.translator.finish()
        self.state.keep(self.translator.final)
        return out

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return self.translator.error(message, code)


class NativeStream(NativeResponsesStream):
    """A relayed Responses stream; its final response is stored as it ends."""

    __slots__ = ("state",)

    def __init__(self, state: ResponsesCall) -> None:
        super().__init__(state.echo())
        self.state = state

    def end(self) -> bytes:
        rest = super().end()
        self.state.keep(self.events.final)
        return rest


class ResponsesRoute(Route):
    operation = Operation.RESPONSES

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        request, fields = parse_responses_request(body)
        assert request.input is not None  # (checked by the parser)
        call = Call(
            request.model,
            body,
            stream=bool(request.stream or request.background),  # (a background response is streamed upstream)
            max_tokens=request.max_output_tokens,
            timeout=request.timeout,
        )
        call.state = ResponsesCall(request, fields, input_items(request.input), edge.responses)
        return call

    async def resolve(self, edge: Edge, principal: Principal, call: Call) -> None:
        state: ResponsesCall = call.state
        state.caller = principal.caller
        previous_id = state.request.previous_response_id
        if previous_id is not None:
            record = await state.store.find(previous_id, principal.caller)
            records = await state.store.conversation(record) if record is not None else None
            if record is None or records is None:
                gone = "" if record is None else " (an earlier response of its conversation is no longer stored)"
                raise bad_request(
                    f"Previous response with id '{previous_id}' not found{gone}.",
                    "previous_response_id",
                    ErrorCode.PREVIOUS_RESPONSE_NOT_FOUND,
                )
            state.history = conversation_items(records)
            state.previous = [*record.previous, record.id]
        call.body = state.native_body()  # (the worst case is counted on the whole conversation)

    def target(self, edge: Edge, principal: Principal, call: Call) -> Target:
        target = super().target(edge, principal, call)
        state: ResponsesCall = call.state
        first = edge.router.by_id.get(call.sent_to) if call.sent_to is not None else None
        if first is None and target.candidates:
            first = target.candidates[0]
        native = state.native = first is not None and speaks_responses(first)

        def same_kind(ids: list[str]) -> list[str]:
            return [i for i in ids if (d := edge.router.by_id.get(i)) is not None and speaks_responses(d) == native]

        if not native:
            state.chat_body = responses_to_chat_body(state.request, state.located(), call.model)
            call.include_usage = call.stream
        return Target(
            target.model_group,
            [d for d in target.candidates if speaks_responses(d) == native],
            same_kind(target.fallbacks),
            same_kind(target.context_fallbacks),
        )

    def prepare(self, edge: Edge, call: Call, deployment: Deployment) -> None:
        state: ResponsesCall = call.state
        if not state.native:
            call.body, call.operation = state.chat_body, Operation.CHAT

    def answer_id(self, call: Call, request_id: str) -> str | None:
        state: ResponsesCall = call.state
        return None if state.native and not state.request.background else response_id_for(request_id)

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        state: ResponsesCall = call.state
        if state.native:
            status, headers, body, response = whole_native_answer(reply, state.echo())
            state.keep(response)
            return status, headers, body
        response = chat_completion_to_response(reply.body, state.request, call.model, response_id_for(request_id))
        state.keep(response)
        return 200, [(b"content-type", b"application/json")], _encoder.encode(response)

    def stream(self, call: Call, request_id: str) -> TranslatedStream | NativeStream:
        state: ResponsesCall = call.state
        return NativeStream(state) if state.native else TranslatedStream(state, call.model, request_id)

    def background(self, edge: Edge, principal: Principal, call: Call, request_id: str) -> BackgroundResponse | None:
        state: ResponsesCall = call.state
        if not state.request.background:
            return None
        state.background = BackgroundResponse(state, edge, response_id_for(request_id), call.model)
        return state.background

    async def answered(self, edge: Edge, principal: Principal, call: Call, request_id: str, body: bytes | None) -> None:
        state: ResponsesCall = call.state
        if state.kept is not None:
            await state.store.written(state.kept)


RESPONSES = ResponsesRoute()


@asgi(openai_paths("responses"), copy_scope=False)
async def responses(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, RESPONSES)
