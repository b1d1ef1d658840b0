"""Google's models: the Gemini API (family "gemini") and Vertex AI (family "vertex_ai").

Modules: wire (Google's wire types), request (OpenAI request -> GenerateContentRequest),
response (GenerateContentResponse -> OpenAI completion / chunks / usage), errors, oauth
(service-account access tokens), native (passthrough usage and paths), adapter (the classes).
"""

from workers.providers.gemini.adapter import Gemini, VertexAI

__all__ = ["Gemini", "VertexAI"]
