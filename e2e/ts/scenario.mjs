// The main end-to-end scenario with the official TypeScript SDK, only its
// baseURL pointed at the Envoy emulator. The Go test that starts everything
// runs `node scenario.mjs` and asserts on the JSON it prints.
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.env.GUARDIAN_BASE_URL;
const apiKey = process.env.GUARDIAN_GATEWAY_KEY;
if (!baseURL || !apiKey) {
  console.error('set GUARDIAN_BASE_URL and GUARDIAN_GATEWAY_KEY');
  process.exit(2);
}

const out = {};
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });
const params = {
  model: 'claude-sonnet-4-6',
  max_tokens: 64,
  messages: [{ role: 'user', content: 'Say hello from TypeScript.' }],
};

const msg = await client.messages.create(params);
out.message = { id: msg.id, type: msg.type, text: msg.content[0]?.text ?? '', usage: msg.usage, stop_reason: msg.stop_reason };

const stream = client.messages.stream(params);
let text = '';
stream.on('text', (t) => { text += t; });
const final = await stream.finalMessage();
out.stream = { text, usage: final.usage, stop_reason: final.stop_reason };

try {
  await new Anthropic({ baseURL, apiKey: 'gw-test-not-a-key', maxRetries: 0 }).messages.create(params);
  out.unknown_key = { error: 'none' };
} catch (e) {
  out.unknown_key = { status: e.status, type: e.error?.error?.type, name: e.constructor.name, request_id: e.requestID ?? e.request_id };
}

try {
  await client.messages.create({ ...params, max_tokens: undefined });
  out.bad_request = { error: 'none' };
} catch (e) {
  out.bad_request = { status: e.status, type: e.error?.error?.type, message: e.error?.error?.message };
}

console.log(JSON.stringify(out));
