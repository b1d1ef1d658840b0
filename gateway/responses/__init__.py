"""OpenAI's Responses API at the edge, for any configured model.

`route` is `POST /v1/responses`: forwarded as it is to deployments that speak the Responses API
(`native` relays their answers), translated to chat completions for the others (`to_chat`, then
`reply` for a whole answer and `stream` for a stream of typed events; `wire` holds what both
write). `request` reads the body, `items` the input items and conversations, `store` keeps the
responses in JetStream KV, and `retrieval` serves `GET`/`DELETE /v1/responses/{id}`,
`GET /v1/responses/{id}/input_items` and `POST /v1/responses/{id}/cancel`. `background` is the job
of a background response (`background: true`) and `events` keeps a background stream's events.
"""
