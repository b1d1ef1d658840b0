"""The Responses API request (https://platform.openai.com/docs/api-reference/responses/create), as
the edge reads it.

Only the fields the gateway itself reads are declared: the model, the input items, the fields the
translation to chat completions uses, `store`, `stream` and `previous_response_id`. Anything else
the client sends (`prompt_cache_key`, `service_tier`, `truncation`, ...) goes on untouched to a
deployment that speaks the Responses API and is dropped by the translation to chat. The input
items are checked by `gateway.responses.items`, which names the offending item in its errors.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from gateway.paging import bad_request as bad_request  # (re-exported: the Responses modules raise it)
from gateway.schemas import PositiveInt, _invalid


class ResponsesTextFormat(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`text.format`: `text`, `json_object`, or `json_schema` with its `name` and `schema`."""

    type: Annotated[str, msgspec.Meta(min_length=1)]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponsesText(msgspec.Struct, kw_only=True):
    format: ResponsesTextFormat | None = None
    verbosity: str | None = None


class ResponsesReasoning(msgspec.Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    previous_response_id: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: ResponsesText | None = None
    max_output_tokens: PositiveInt | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    reasoning: ResponsesReasoning | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None  # None: stored, as OpenAI does by default
    stream: bool | None = None
    include: list[str] | None = None
    background: bool | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None  # seconds (the gateway's; not sent upstream)

    @property
    def stored(self) -> bool:
        return self.store is not False


_decoder = msgspec.json.Decoder(ResponsesRequest)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def parse_responses_request(body: bytes) -> tuple[ResponsesRequest, dict[str, msgspec.Raw]]:
    """(the request, its top-level fields as the client's JSON text); a GatewayError(400) names
    the bad field."""
    try:
        request = _decoder.decode(body)
        fields = _fields_decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    if request.input is None:
        raise bad_request("Missing required parameter: 'input'.", "input")
    if request.background:
        raise bad_request("Background responses are not supported by this gateway: send `background: false`.", "background")
    if "conversation" in fields and bytes(fields["conversation"]).strip() != b"null":
        raise bad_request(
            "The Conversations API is not supported by this gateway: continue with `previous_response_id`.", "conversation"
        )
    return request, fields
