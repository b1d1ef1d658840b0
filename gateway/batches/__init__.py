"""The Files API and the Batch API (OpenAI's shapes): uploads kept in the JetStream Object Store,
batches run line by line through the edge's one request pipeline at batch priority."""
