"""Cohere's v2 API behind the OpenAI chat and embeddings formats (see adapter.py for the class,
request.py / response.py / stream.py for the converters, wire.py for the wire types)."""

from workers.providers.cohere.adapter import Cohere, CohereUsageReader

__all__ = ["Cohere", "CohereUsageReader"]
