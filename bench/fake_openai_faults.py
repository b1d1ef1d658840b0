"""The fake OpenAI upstream's error answers (see fake_openai.py): the faults chosen by model name
(`fake-error-{400,401,404,429,500,503}`, `fake-context-length`), the check of a request's
`metadata`, and the JSON responses errors and answers are sent as, in OpenAI's error object format
{"error": {"message", "type", "param", "code"}}:
  https://platform.openai.com/docs/guides/error-codes
"""

from __future__ import annotations

from bench.fake_http import Response
from bench.fake_openai_payloads import error_body

JSON_HEADERS = {"Content-Type": "application/json"}

# model name -> (status, message, type, param, code, extra headers)
FAULTS: dict[str, tuple[int, str, str, str | None, str | None, dict]] = {
    "fake-error-400": (400, "fake bad request", "invalid_request_error", "messages", None, {}),
    "fake-error-401": (401, "Incorrect API key provided", "invalid_request_error", None, "invalid_api_key", {}),
    "fake-error-404": (
        404,
        "The model `fake-error-404` does not exist or you do not have access to it.",
        "invalid_request_error",
        None,
        "model_not_found",
        {},
    ),
    "fake-error-429": (
        429,
        "Rate limit reached for requests on fake-error-429. Please try again in 1s.",
        "requests",
        None,
        "rate_limit_exceeded",
        {"retry-after": "1"},
    ),
    "fake-context-length": (
        400,
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
        {},
    ),
    "fake-error-500": (
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        None,
        {},
    ),
    "fake-error-503": (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
        None,
        {},
    ),
}


def metadata_problem(metadata: object) -> tuple[str, str] | None:
    """OpenAI's `metadata`: a map of at most 16 string keys to string values (the API reference's
    "Set of 16 key-value pairs"); (message, param) of what is wrong, or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return f"Invalid type for 'metadata': expected an object, but got {type(metadata).__name__} instead.", "metadata"
    if len(metadata) > 16:
        return f"Invalid 'metadata': too many properties. Expected at most 16, but got {len(metadata)}.", "metadata"
    for key, value in metadata.items():
        if not isinstance(value, str):
            return (
                f"Invalid type for 'metadata.{key}': expected a string, but got {type(value).__name__} instead.",
                f"metadata.{key}",
            )
    return None


def json_response(body: bytes, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON answer (with extra headers, if any)."""
    return Response(status, body, {**JSON_HEADERS, **headers} if headers else JSON_HEADERS)


def error_response(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None, headers: dict | None = None
) -> Response:
    """An error answer in OpenAI's error object format."""
    return json_response(error_body(message, type_, param, code), status, headers)
