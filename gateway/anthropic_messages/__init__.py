"""Converters behind the Anthropic-compatible `POST /v1/messages` edge.

An Anthropic SDK client sends a Messages request; the edge parses it (`parse_messages_request`),
turns it into the gateway's internal OpenAI chat-completions body (`messages_to_chat_body`), sends
that down the normal path to any configured model, and turns the answer back into Anthropic's
wire format: a whole `message` (`chat_completion_to_message`) or a stream of events
(`StreamTranslator`). Errors use Anthropic's error shape (`anthropic_error_json`, `error_event`).
"""

from gateway.anthropic_messages.reply import chat_completion_to_message, message_id_for
from gateway.anthropic_messages.request import MessagesRequest, parse_messages_request
from gateway.anthropic_messages.stream import StreamTranslator
from gateway.anthropic_messages.to_chat import messages_to_chat_body
from gateway.anthropic_messages.wire import anthropic_error_json, anthropic_error_type, error_event

__all__ = [
    "MessagesRequest",
    "StreamTranslator",
    "anthropic_error_json",
    "anthropic_error_type",
    "chat_completion_to_message",
    "error_event",
    "message_id_for",
    "messages_to_chat_body",
    "parse_messages_request",
]
