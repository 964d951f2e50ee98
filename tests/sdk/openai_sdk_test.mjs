// Drives bifrost-http with the official OpenAI SDK (npm package `openai`), unchanged but for
// its baseURL: the proof that any OpenAI client can point at the gateway.
//
// usage: node openai_sdk_test.mjs PATH/TO/bifrost-http
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import readline from 'node:readline';
import OpenAI from 'openai';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node openai_sdk_test.mjs PATH/TO/bifrost-http');
  process.exit(2);
}

/** Starts bifrost-http on a free port (the embedded mock provider); resolves to {proc, port}. */
function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(binary, ['-port', '0', '-log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const lines = readline.createInterface({ input: proc.stderr });
    let resolved = false;
    lines.on('line', (line) => {
      if (resolved) return;
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'listening') {
          resolved = true;
          resolve({ proc, port: rec.port });
        }
      } catch { /* not a log record */ }
    });
    proc.on('exit', (code) => { if (!resolved) reject(new Error(`bifrost-http exited with ${code}`)); });
  });
}

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('chat completion', async (client) => {
  const r = await client.chat.completions.create({
    model: 'mock/gpt-4o-mini',
    messages: [{ role: 'user', content: 'Hello SDK' }],
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'Echo: Hello SDK');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(r.usage.total_tokens > 0);
});

test('streamed chat completion', async (client) => {
  const stream = await client.chat.completions.create({
    model: 'mock/gpt-4o-mini',
    messages: [{ role: 'user', content: 'stream these words' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let chunks = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'Echo: stream these words');
  assert.ok(chunks >= 4, `only ${chunks} chunks`);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.total_tokens > 0, 'no usage chunk');
});

test('embeddings', async (client) => {
  const r = await client.embeddings.create({
    model: 'mock/text-embedding-3-small',
    input: ['alpha', 'beta'],
    encoding_format: 'float',
  });
  assert.equal(r.object, 'list');
  assert.equal(r.data.length, 2);
  assert.deepEqual(r.data.map((d) => d.index), [0, 1]);
  assert.ok(r.data[0].embedding.length > 0 && typeof r.data[0].embedding[0] === 'number');
  assert.ok(r.usage.prompt_tokens > 0);
});

test('legacy text completion', async (client) => {
  const r = await client.completions.create({
    model: 'mock/gpt-3.5-turbo-instruct',
    prompt: 'Say hi',
    max_tokens: 5,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
});

test('model listing', async (client) => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('mock/gpt-4o-mini'), `models: ${ids}`);
});

test('unknown provider is a 400 with OpenAI error JSON', async (client) => {
  await assert.rejects(
    client.chat.completions.create({ model: 'nosuch/model', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.ok(err instanceof OpenAI.APIError, `got ${err}`);
      assert.equal(err.status, 400);
      assert.match(err.message, /nosuch/);
      return true;
    });
});

test('invalid request names the field', async (client) => {
  await assert.rejects(
    client.chat.completions.create({ model: 'mock/gpt-4o-mini', messages: [{ role: 7, content: 'x' }] }),
    (err) => {
      assert.equal(err.status, 400);
      assert.match(err.message, /messages\[0\]\.role/);
      return true;
    });
});

const { proc, port } = await startServer();
const client = new OpenAI({ apiKey: 'unused', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: 10_000 });
let failed = 0;
for (const { name, fn } of cases) {
  try {
    await fn(client);
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}\n${err.stack ?? err}`);
  }
}
proc.kill('SIGTERM');
const code = await new Promise((resolve) => proc.on('exit', (c) => resolve(c)));
if (code !== 0) {
  failed++;
  console.log(`not ok - bifrost-http exit status after SIGTERM: ${code}`);
}
console.log(`${cases.length + 1 - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
