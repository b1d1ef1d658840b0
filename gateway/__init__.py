"""The edge: an OpenAI-compatible HTTP API (Litestar on Granian) in front of the NATS bus."""
