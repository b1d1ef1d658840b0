// One streamed chat completion and one streamed Responses call with the Node `openai` SDK, against
// the base URL and key given; prints what came back as one JSON line (tests/e2e/test_responses_clients.py).
// Usage: node openai_streams.js <base URL> <key> <chat model> <responses model>
const OpenAI = require("openai");

const [baseURL, apiKey, chatModel, responsesModel] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

async function chat() {
  const { data: stream, response } = await client.chat.completions
    .create({
      model: chatModel,
      messages: [{ role: "user", content: "hello from node" }],
      stream: true,
      stream_options: { include_usage: true },
    })
    .withResponse();
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  return { request_id: response.headers.get("x-request-id"), text, usage };
}

async function responses() {
  const { data: stream, response } = await client.responses
    .create({ model: responsesModel, input: "hello from node", stream: true })
    .withResponse();
  const types = [];
  const sequence = [];
  let text = "";
  let final = null;
  for await (const event of stream) {
    types.push(event.type);
    sequence.push(event.sequence_number);
    if (event.type === "response.output_text.delta") text += event.delta;
    if (event.type === "response.completed") final = event.response;
  }
  return { request_id: response.headers.get("x-request-id"), types, sequence, text, final };
}

(async () => {
  console.log(JSON.stringify({ chat: await chat(), responses: await responses() }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
