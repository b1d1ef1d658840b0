"""Fake OpenAI upstream for llmgw's benchmarks and tests.

The wire format follows the public OpenAI API reference:
  https://platform.openai.com/docs/api-reference/chat/create       (chat.completion object)
  https://platform.openai.com/docs/api-reference/chat/streaming    (chat.completion.chunk SSE events)
  https://platform.openai.com/docs/api-reference/embeddings/create
  https://platform.openai.com/docs/api-reference/models/list
  https://platform.openai.com/docs/api-reference/responses         (the Responses API: fake_openai_responses.py)
  https://platform.openai.com/docs/api-reference/batch             (the Files and Batch APIs: fake_openai_batches.py)
  (and those fake_openai_media.py names)
  and the error object format {"error": {"message", "type", "param", "code"}}.

Endpoints (with or without the /v1 prefix): POST /v1/chat/completions, POST /v1/embeddings,
GET /v1/models, POST /v1/completions, POST /v1/images/generations, POST /v1/moderations,
POST /v1/rerank (vLLM's; payloads in fake_openai_media.py), POST /v1/responses (whole or
streamed; payloads in fake_openai_responses.py), POST /v1/audio/transcriptions,
/v1/audio/translations and /v1/audio/speech (see fake_openai_audio.py); POST /v1/files, GET
/v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id},
POST /v1/batches/{id}/cancel (fake_openai_batches.py; its delay:
POST /_fake/batch_delay {"seconds": x, "create_seconds": y}); GET /_fake/stats ->
{"requests", "by_model", "auth_failures", "by_path", "last_request", "last_responses" (the last
Responses request body), "responses_usage" (the Responses usage it reported, summed), "agent" (the
chat `fake-agent`'s tool calls by name, its answers to tool results, and each turn's usage),
"most_in_flight" (the most calls of each model answered at once since the last reset)};
POST /_fake/reset.
Azure OpenAI's paths answer the same, the model being the deployment name:
POST /openai/deployments/{deployment}/chat/completions, .../embeddings, .../completions and
.../images/generations, with the `api-key`
header (401 otherwise) and the required `api-version` query parameter (404 Resource not found
otherwise, as Azure answers), following
  https://learn.microsoft.com/en-us/azure/ai-services/openai/reference
and Azure's v1 Responses API, POST /openai/v1/responses (the model is the body's, `api-key` header).
`requests` counts every call to an API endpoint (auth failures included); `by_model` counts
those that passed auth and named a model.

Behaviour by the request's model name: fake-error-{400,401,404,429,500,503} answer that error;
fake-slow-<ms> waits before answering; fake-hang never answers; fake-stream-fail streams three
words then drops the connection; fake-chunk-delay-<ms> streams with that delay between chunks (on
the Responses API: before each text delta); fake-long... answers as many words as `max_tokens`
asks, without the 2000 cap (answers of megabytes), streamed as one content delta (one chunk of
megabytes, as a huge tool call's arguments can come);
fake-agent is a scripted coding agent (one tool call, then a text: fake_openai_chat_agent.py on
chat completions, fake_openai_responses.py on the Responses API).
Token accounting is described in fake_openai_payloads.py.

CLI:  python -m bench.fake_openai --host 127.0.0.1 --port 0 [--api-key KEY]
          [--chunk-delay-ms 0] [--latency-ms 0]        (prints "READY <port>" when listening)
Code: handle, port = await start_fake(api_key="sk-x"); ...; await handle.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable

from bench import fake_openai_chat_agent as chat_agent
from bench import fake_openai_media as media
from bench import fake_openai_payloads as payloads
from bench import fake_openai_responses as responses_payloads
from bench.fake_http import FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app, suffix_ms
from bench.fake_openai_audio import FakeAudio
from bench.fake_openai_batches import FakeBatches
from bench.fake_openai_faults import FAULTS, error_response, json_response, metadata_problem
from bench.fake_openai_payloads import BadRequest
from bench.fake_openai_stats import FakeStats
from bench.fake_openai_streams import SSE_HEADERS, chat_events, each, response_events, wants_usage

_SERVER_PATH = re.compile(r"^/([A-Za-z0-9._-]+)/v1/")
AZURE_PREFIX = "/openai/deployments/"
AZURE_RESPONSES_PATH = "/openai/v1/responses"  # Azure's v1 API: no deployment in the path, no api-version
AZURE_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
    "active subscription and use a correct regional API endpoint for your resource."
)
Route = Callable[[dict], Awaitable[Response | StreamResponse]]  # an endpoint's answer to a checked body


class FakeOpenAI:
    """The request handler: routing, auth, faults and responses."""

    def __init__(self, api_key: str | None = None, chunk_delay_ms: float = 0, latency_ms: float = 0) -> None:
        self.expected_auth = f"Bearer {api_key}" if api_key else None
        self.api_key = api_key
        self.chunk_delay_s = chunk_delay_ms / 1000
        self.latency_s = latency_ms / 1000
        self.stats = FakeStats()
        self.audio = FakeAudio(FAULTS, self.stats.by_model, self.chunk_delay_s)  # /audio/... (fake_openai_audio.py)
        self._api_routes = {
            ("POST", "/chat/completions"): self._chat,
            ("POST", "/embeddings"): self._embeddings,
            ("POST", "/responses"): self._responses,
            ("GET", "/models"): self._models,
            ("POST", "/completions"): self._completions,
            ("POST", "/images/generations"): self._images,
            ("POST", "/moderations"): self._moderations,
            ("POST", "/rerank"): self._rerank,
        }
        self.last_request: dict | None = None  # the last body that passed auth
        self.batches = FakeBatches()  # the Files and Batch APIs (fake_openai_batches.py)

    async def handle(self, request: Request) -> Response | StreamResponse:
        path = request.path
        served = _SERVER_PATH.match(path)  # /<model-id>/v1/...: one model server per path (seed 004)
        if served is not None and not path.startswith(("/v1/", "/_fake/", "/openai/")):
            self.stats.by_path[served.group(1)] = self.stats.by_path.get(served.group(1), 0) + 1
            path = path[len(served.group(1)) + 1 :]
        if path.startswith("/v1/"):
            path = path[3:]
        route = self._api_routes.get((request.method, path))
        if route is not None:
            return await self._api_call(request, route)
        if path == AZURE_RESPONSES_PATH and request.method == "POST":
            return await self._azure_call(request, None, self._responses, needs_version=False)
        if path.startswith("/audio/") and request.method == "POST":
            self.stats.requests += 1
            return self._bearer_refusal(request) or await self.audio.handle(request, path, None)
        if path.startswith(AZURE_PREFIX) and request.method == "POST":
            deployment, _, operation = path[len(AZURE_PREFIX) :].partition("/")
            if deployment and operation.startswith("audio/"):
                self.stats.requests += 1
                return self._azure_refusal(request) or await self.audio.handle(request, "/" + operation, deployment)
            route = self._api_routes.get(("POST", "/" + operation))
            if deployment and route is not None:
                return await self._azure_call(request, deployment, route)
        if path.startswith(("/files", "/batches")):
            return await self._batch_api(request, path)
        if path == "/_fake/batch_delay" and request.method == "POST":
            delays = payloads.decode_json(request.body)
            self.batches.delay = float(delays["seconds"])
            self.batches.create_delay = float(delays.get("create_seconds", 0.0))
            return json_response(b'{"ok":true}')
        if path == "/_fake/stats" and request.method == "GET":
            stats = {**self.stats.as_dict(), **self.batches.stats(), "last_request": self.last_request}
            return json_response(payloads.encode_json(stats))
        if path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            self.batches.reset()
            return json_response(b'{"ok":true}')
        return error_response(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error")

    async def _batch_api(self, request: Request, path: str) -> Response:
        """The Files and Batch APIs (fake_openai_batches.py), behind the same bearer auth."""
        refusal = self._bearer_refusal(request)
        if refusal is not None:
            return refusal
        parts = path.strip("/").split("/")
        if request.method == "POST" and parts == ["files"]:
            status, body = self.batches.upload(request.headers.get("content-type", ""), request.body)
        elif request.method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
            status, body = self.batches.content(parts[1])
            if status == 200:
                return Response(200, body, {"Content-Type": "application/octet-stream"})
        elif request.method == "POST" and parts == ["batches"]:
            if self.batches.create_delay:
                await asyncio.sleep(self.batches.create_delay)
            try:
                status, body = self.batches.create(payloads.decode_json(request.body))
            except (ValueError, AttributeError):
                return error_response(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        elif request.method == "GET" and parts == ["batches"]:
            status, body = self.batches.listed()
        elif request.method == "GET" and len(parts) == 2 and parts[0] == "batches":
            status, body = self.batches.retrieve(parts[1])
        elif request.method == "POST" and len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel":
            status, body = self.batches.cancel(parts[1])
        else:
            return error_response(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error")
        return json_response(body, status)

    def _bearer_refusal(self, request: Request) -> Response | None:
        if self.expected_auth and request.headers.get("authorization") != self.expected_auth:
            self.stats.auth_failures += 1
            return error_response(401, "Incorrect API key provided", "invalid_request_error", None, "invalid_api_key")
        return None

    def _azure_refusal(self, request: Request, needs_version: bool = True) -> Response | None:
        """Azure OpenAI: `api-key` header, `api-version` required (the v1 API: no api-version)."""
        if self.api_key and request.headers.get("api-key") != self.api_key:
            self.stats.auth_failures += 1
            return json_response(payloads.encode_json({"error": {"code": "401", "message": AZURE_DENIED}}), 401)
        if needs_version and not any(p.startswith("api-version=") and len(p) > 12 for p in request.query.split("&")):
            return json_response(b'{"error":{"code":"404","message":"Resource not found"}}', 404)
        return None

    async def _api_call(self, request: Request, route: Route) -> Response | StreamResponse:
        self.stats.requests += 1
        refusal = self._bearer_refusal(request)
        if refusal is not None:
            return refusal
        if request.method == "GET":
            return await route({})
        return await self._model_call(request.body, route)

    async def _azure_call(
        self, request: Request, deployment: str | None, route: Route, needs_version: bool = True
    ) -> Response | StreamResponse:
        """Azure OpenAI: the deployment is the model (the v1 API: the body names the deployment)."""
        self.stats.requests += 1
        return self._azure_refusal(request, needs_version) or await self._model_call(request.body, route, deployment)

    async def _model_call(self, raw: bytes, route: Route, model_override: str | None = None) -> Response | StreamResponse:
        """A call that passed auth: the body checked, faults by model name, then the answer."""
        try:
            body = payloads.decode_json(raw)
        except ValueError:
            return error_response(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not isinstance(body, dict):
            return error_response(400, "The request body must be a JSON object.", "invalid_request_error")
        if model_override is not None:
            body["model"] = model_override
        self.last_request = body
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error_response(400, "you must provide a model parameter", "invalid_request_error", "model")
        bad_metadata = metadata_problem(body.get("metadata"))
        if bad_metadata is not None:
            return error_response(400, bad_metadata[0], "invalid_request_error", bad_metadata[1], "invalid_type")
        self.stats.by_model[model] = self.stats.by_model.get(model, 0) + 1
        fault = FAULTS.get(model)
        if fault is not None:
            status, message, type_, param, code, headers = fault
            return error_response(status, message, type_, param, code, headers)
        if model == "fake-hang":
            await asyncio.Future()  # cancelled when the client disconnects
        stats = self.stats
        stats.in_flight[model] = now = stats.in_flight.get(model, 0) + 1
        stats.most_in_flight[model] = max(stats.most_in_flight.get(model, 0), now)
        try:
            delay_s = self.latency_s + (suffix_ms(model, "fake-slow-") or 0) / 1000
            if delay_s:
                await asyncio.sleep(delay_s)
            return await route(body)
        except BadRequest as exc:
            return error_response(400, str(exc), "invalid_request_error", exc.param)
        finally:
            stats.in_flight[model] -= 1

    async def _models(self, body: dict) -> Response:
        return json_response(payloads.models_list())

    async def _embeddings(self, body: dict) -> Response:
        return json_response(payloads.embeddings(body))

    async def _responses(self, body: dict) -> Response | StreamResponse:
        self.stats.last_responses = body
        items = responses_payloads.check_request(body)
        reply = responses_payloads.plan_reply(body, items)
        for name in ("input_tokens", "output_tokens"):
            self.stats.responses_usage[name] = self.stats.responses_usage.get(name, 0) + reply.usage[name]
        writer = responses_payloads.ResponseWriter(body, reply)
        if not body.get("stream"):
            return json_response(writer.whole())
        return StreamResponse(response_events(writer, body["model"], self.chunk_delay_s), headers=SSE_HEADERS)

    async def _completions(self, body: dict) -> Response | StreamResponse:
        plan = media.CompletionPlan(body)
        if not body.get("stream"):
            return json_response(media.text_completion(body["model"], plan))
        events = media.text_completion_events(body["model"], plan, wants_usage(body))
        return StreamResponse(each(events), headers=SSE_HEADERS)

    async def _images(self, body: dict) -> Response:
        return json_response(media.images(body))

    async def _moderations(self, body: dict) -> Response:
        return json_response(media.moderations(body))

    async def _rerank(self, body: dict) -> Response:
        return json_response(media.rerank(body))

    async def _chat(self, body: dict) -> Response | StreamResponse:
        turn = chat_agent.agent_turn(body)
        if turn is not None:
            return self._agent_chat(body, turn)
        prompt_tokens, cached_tokens = payloads.count_prompt(body.get("messages"))
        n, finish_reason = payloads.completion_length(body)
        usage = payloads.chat_usage(prompt_tokens, n, cached_tokens)
        model = body["model"]
        if not body.get("stream"):
            return json_response(payloads.chat_completion(model, n, finish_reason, usage))
        events = chat_events(model, n, finish_reason, usage, wants_usage(body), self.chunk_delay_s)
        return StreamResponse(events, headers=SSE_HEADERS)

    def _agent_chat(self, body: dict, turn: chat_agent.AgentTurn) -> Response | StreamResponse:
        self.stats.agent["usage"].append({k: turn.usage[k] for k in ("prompt_tokens", "completion_tokens")})
        if turn.call is not None:
            self.stats.agent["calls"].append(turn.call[0])
        else:
            self.stats.agent["outputs"].append(turn.text)
        if not body.get("stream"):
            return json_response(chat_agent.whole(body["model"], turn))
        return StreamResponse(each(chat_agent.events(body["model"], turn, wants_usage(body))), headers=SSE_HEADERS)


async def start_fake(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    chunk_delay_ms: float = 0,
    latency_ms: float = 0,
) -> tuple[FakeServerHandle, int]:
    """Start the fake upstream on the running loop; returns (handle, actual port)."""
    return await start_app(FakeOpenAI(api_key=api_key, chunk_delay_ms=chunk_delay_ms, latency_ms=latency_ms), host, port, "/v1")


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-delay-ms", type=float, default=0, help="delay between streamed chunks")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay before every model answer")


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_openai",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key, a.chunk_delay_ms, a.latency_ms),
        argv,
        "require 'Authorization: Bearer <key>'",
        _flags,
    )


if __name__ == "__main__":
    sys.exit(main())
