"""Anthropic's Messages API behind the OpenAI chat format (see adapter.py for the class,
request.py / response.py / stream.py for the converters, wire.py for the wire types)."""

from workers.providers.anthropic.adapter import Anthropic, AnthropicUsageReader

__all__ = ["Anthropic", "AnthropicUsageReader"]
