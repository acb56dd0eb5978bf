// The real `openai` npm client against Skein's OpenAI-compatible HTTP front.
//   node openai_client.mjs BASE_URL     (e.g. http://127.0.0.1:PORT/v1)
// Prints one JSON object with what each call returned; tests/openai_http_test.cc checks it.
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.argv[2], apiKey: 'unused', maxRetries: 0 });
const out = {};
const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name a colour.' },
];

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const chat = await client.chat.completions.create({
  model: out.models[0], messages, max_tokens: 12, temperature: 0, seed: 7,
});
out.chat = {
  content: chat.choices[0].message.content,
  role: chat.choices[0].message.role,
  finish_reason: chat.choices[0].finish_reason,
  usage: chat.usage,
  object: chat.object,
};

const stream = await client.chat.completions.create({
  model: out.models[0], messages, max_tokens: 12, temperature: 0, seed: 7, stream: true,
  stream_options: { include_usage: true },
});
let streamed = '';
let chunks = 0;
let finish = null;
let usage = null;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    streamed += choice.delta?.content ?? '';
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}
out.chat_stream = { content: streamed, chunks, finish_reason: finish, usage };

const completion = await client.completions.create({
  model: out.models[0], prompt: 'The sky is', max_tokens: 5, temperature: 0, logprobs: 2,
});
out.completion = {
  text: completion.choices[0].text,
  finish_reason: completion.choices[0].finish_reason,
  logprob_tokens: completion.choices[0].logprobs?.tokens?.length ?? -1,
  top_logprobs: completion.choices[0].logprobs?.top_logprobs?.[0]
    ? Object.keys(completion.choices[0].logprobs.top_logprobs[0]).length : -1,
  usage: completion.usage,
};

let text = '';
for await (const chunk of await client.completions.create({
  model: out.models[0], prompt: 'The sky is', max_tokens: 5, temperature: 0, stream: true,
})) {
  text += chunk.choices[0]?.text ?? '';
}
out.completion_stream = { text };

try {
  await client.chat.completions.create({ model: out.models[0], messages, n: 2 });
  out.refused = { status: 0 };
} catch (e) {
  out.refused = { status: e.status, param: e.error?.param ?? e.param ?? null, type: e.error?.type ?? e.type ?? null };
}
try {
  await client.chat.completions.create({ model: 'no-such-model', messages });
  out.unknown_model = { status: 0 };
} catch (e) {
  out.unknown_model = { status: e.status };
}
console.log(JSON.stringify(out));
