"""Stored chat completions (`store: true` on `POST /v1/chat/completions`), OpenAI's API for them.

`keeping` is what the chat route does for a request to be stored (its body, its stream seen on
the way, the completion kept once complete), `assemble` puts a stream back into a completion,
`store` keeps the records in JetStream KV (shared with stored responses: gateway/kept_records.py),
`routes` serves `GET`/`POST`/`DELETE /v1/chat/completions/{id}` and `.../{id}/messages`, and
`listing` serves `GET /v1/chat/completions`.
"""
