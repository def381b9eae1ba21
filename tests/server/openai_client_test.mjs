// `roofline serve` driven by the official OpenAI Node client (and plain fetch for what the client cannot
// send). Run by tests/cli/server_openai.sh, which starts the server and passes, in the environment:
//   ROOFLINE_BASE_URL (http://127.0.0.1:PORT), ROOFLINE_API_KEY, ROOFLINE_MODEL (served name),
//   ROOFLINE_SERVER_PID (for the drain phase), ROOFLINE_NPM_MODULES (where `openai` is installed).
// Phases, in order: api (shapes, parameters, errors), soak (hundreds of concurrent streams with early
// disconnects and malformed requests; every accepted request completes or is cancelled; /health answers
// throughout; KV blocks and queues return to 0), drain (SIGTERM while streams run: they finish, new work
// is refused). Prints `ok   NAME` / `FAIL NAME: why` per check; exits 1 on any failure.
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';

const { default: OpenAI } = await import(pathToFileURL(`${process.env.ROOFLINE_NPM_MODULES}/openai/index.mjs`).href);

const base = process.env.ROOFLINE_BASE_URL;
const key = process.env.ROOFLINE_API_KEY;
const model = process.env.ROOFLINE_MODEL;
const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0, timeout: 60_000 });
const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };

let failures = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

// Resolves with the APIError a call throws; fails when it succeeds.
async function apiError(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('the call succeeded');
}

async function metrics() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name) => {
    const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  };
  return { text, value };
}

// Reads a stream to the end: text per choice, finish reasons, usage, chunk count.
async function drain(stream, chat) {
  const text = {}, finish = {};
  let usage = null, chunks = 0, roleFirst = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (chat && roleFirst === null) roleFirst = c.delta.role === 'assistant';
      text[c.index] = (text[c.index] ?? '') + ((chat ? c.delta.content : c.text) ?? '');
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { text, finish, usage, chunks, roleFirst };
}

// An ASCII run of `length` characters in `text` (the fixture model writes mostly noise), or null.
function asciiRun(text, length, from = 4) {
  for (let i = from; i + length <= text.length; i++) {
    const s = text.slice(i, i + length);
    if (/^[\x21-\x7e]+$/.test(s)) return s;
  }
  return null;
}

async function apiPhase() {
  const greedy = { model, temperature: 0, ignore_eos: true };

  await check('models.list', async () => {
    const page = await client.models.list();
    assert.equal(page.data.length, 1);
    assert.equal(page.data[0].id, model);
    assert.equal(page.data[0].object, 'model');
  });

  await check('completion: text prompt, usage', async () => {
    const r = await client.completions.create({ ...greedy, prompt: 'Hello', max_tokens: 8 });
    assert.equal(r.object, 'text_completion');
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].index, 0);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(typeof r.choices[0].text, 'string');
    assert.equal(r.usage.completion_tokens, 8);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
  });

  await check('completion: streaming equals non-streaming, include_usage', async () => {
    const params = { ...greedy, prompt: 'Once upon a time', max_tokens: 12 };
    const whole = await client.completions.create(params);
    const s = await drain(await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }), false);
    assert.equal(s.text[0], whole.choices[0].text);
    assert.equal(s.finish[0], 'length');
    assert.deepEqual(s.usage, whole.usage);
  });

  await check('completion: token ids, logprobs (legacy shape)', async () => {
    const r = await client.completions.create({ ...greedy, prompt: [5, 6, 7], max_tokens: 4, logprobs: 2 });
    assert.equal(r.usage.prompt_tokens, 3);
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, 4);
    assert.equal(lp.token_logprobs.length, 4);
    assert.equal(lp.text_offset.length, 4);
    for (let i = 0; i < 4; i++) {
      assert.ok(lp.token_logprobs[i] <= 0);
      const top = Object.values(lp.top_logprobs[i]);
      assert.ok(top.length >= 1 && top.length <= 2);
      assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs[i]) < 1e-5);  // greedy took the top token
    }
  });

  await check('chat: non-streaming, logprobs (chat shape)', async () => {
    const r = await client.chat.completions.create({
      ...greedy, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }],
      max_tokens: 6, logprobs: true, top_logprobs: 2,
    });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, 6);
    for (const t of content) {
      assert.equal(typeof t.token, 'string');
      assert.ok(Array.isArray(t.bytes));
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    }
    assert.equal(r.usage.completion_tokens, 6);
  });

  await check('chat: streaming equals non-streaming, role first, include_usage', async () => {
    const params = { ...greedy, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 10 };
    const whole = await client.chat.completions.create(params);
    const s = await drain(await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }), true);
    assert.equal(s.roleFirst, true);
    assert.equal(s.text[0], whole.choices[0].message.content);
    assert.equal(s.finish[0], 'length');
    assert.deepEqual(s.usage, whole.usage);
  });

  await check('n > 1: independent choices, indexed', async () => {
    const r = await client.completions.create({ model, prompt: 'abc', max_tokens: 8, n: 3, seed: 7, temperature: 1, ignore_eos: true });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    assert.equal(r.usage.completion_tokens, 24);
    assert.ok(new Set(r.choices.map((c) => c.text)).size > 1);
    const again = await client.completions.create({ model, prompt: 'abc', max_tokens: 8, n: 3, seed: 7, temperature: 1, ignore_eos: true });
    assert.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text));  // same seed, same text
    const s = await drain(await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'x' }], max_tokens: 5, n: 2, stream: true, seed: 3, ignore_eos: true,
    }), true);
    assert.deepEqual(Object.keys(s.finish).sort(), ['0', '1']);
  });

  await check('stop strings cut the text', async () => {
    const free = await client.completions.create({ ...greedy, prompt: 'The quick brown fox', max_tokens: 60 });
    const stop = asciiRun(free.choices[0].text, 2);
    assert.ok(stop, `no ASCII run in ${JSON.stringify(free.choices[0].text)}`);
    const r = await client.completions.create({ ...greedy, prompt: 'The quick brown fox', max_tokens: 60, stop: [stop, 'never'] });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].text, free.choices[0].text.slice(0, free.choices[0].text.indexOf(stop)));
    const s = await drain(await client.completions.create({ ...greedy, prompt: 'The quick brown fox', max_tokens: 60, stop, stream: true }), false);
    assert.equal(s.text[0], r.choices[0].text);
    assert.equal(s.finish[0], 'stop');
  });

  await check('errors: 400 bad parameters, with param and message', async () => {
    let e = await apiError(client.completions.create({ model, prompt: 'x', temperature: 5 }));
    assert.equal(e.status, 400);
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.param, 'temperature');
    assert.match(e.message, /'temperature' must be in \[0, 2\] \(got 5\)/);
    e = await apiError(client.chat.completions.create({ model, messages: [] }));
    assert.equal(e.status, 400);
    assert.equal(e.param, 'messages');
    e = await apiError(client.completions.create({ model, prompt: 'x', max_tokens: 10000 }));
    assert.equal(e.status, 400);
    assert.equal(e.code, 'context_length_exceeded');
    assert.match(e.message, /maximum context length is \d+ tokens. However, you requested \d+ tokens \(\d+ in the prompt, 10000/);
    e = await apiError(client.completions.create({ model, prompt: 'x', n: 'two' }));
    assert.equal(e.status, 400);
    assert.equal(e.param, 'n');
  });

  await check('errors: 401 without the right key', async () => {
    const wrong = new OpenAI({ apiKey: 'wrong', baseURL: `${base}/v1`, maxRetries: 0 });
    const e = await apiError(wrong.models.list());
    assert.equal(e.status, 401);
    assert.equal(e.code, 'invalid_api_key');
    const none = await fetch(`${base}/v1/completions`, { method: 'POST', body: '{}' });
    assert.equal(none.status, 401);
    assert.equal((await fetch(`${base}/health`)).status, 200);  // probes need no key
  });

  await check('errors: 404 unknown route and model, 405 wrong method, 400 bad JSON, 413 huge body', async () => {
    let r = await fetch(`${base}/v1/nothing`, { method: 'POST', headers: auth, body: '{}' });
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.type, 'invalid_request_error');
    const e = await apiError(client.completions.create({ model: 'no-such-model', prompt: 'x' }));
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    r = await fetch(`${base}/v1/chat/completions`, { headers: auth });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'POST');
    r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: auth, body: '{"prompt": ' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, 'invalid_json');
    r = await fetch(`${base}/v1/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ prompt: 'x'.repeat(9 << 20) }) });
    assert.equal(r.status, 413);
    // The unread rest of the body makes the connection useless: the server says so, and no client reuses it.
    assert.equal(r.headers.get('connection'), 'close');
    assert.equal((await r.json()).error.code, 'request_too_large');
  });
}

async function soakPhase() {
  const total = 250, malformed = 40;
  const outcomes = { completed: 0, aborted: 0, rejected: 0, malformed: 0 };
  let healthChecks = 0, healthWorst = 0, soaking = true;
  const problems = [];

  // GET /health on a pooled keep-alive connection. When this process is starved (CI runs tests side by
  // side) the server may close the idle connection (its keep-alive timeout) before the client notices, and
  // the next request on it fails with a socket error: HTTP lets a client retry an idempotent request then,
  // and so does this loop, once, on a fresh connection. Any other failure is a problem.
  const getHealth = async () => {
    try {
      return await fetch(`${base}/health`);
    } catch (e) {
      if (e.cause?.code !== 'UND_ERR_SOCKET') throw e;
      return await fetch(`${base}/health`);
    }
  };
  const health = (async () => {
    while (soaking) {
      const t0 = Date.now();
      try {
        const r = await getHealth();
        if (r.status !== 200) problems.push(`/health answered ${r.status}`);
        await r.arrayBuffer();
      } catch (e) {
        problems.push(`/health failed: ${e.message} (${e.cause?.code ?? 'no cause'})`);
      }
      healthWorst = Math.max(healthWorst, Date.now() - t0);
      healthChecks++;
      await new Promise((res) => setTimeout(res, 50));
    }
  })();

  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const one = async (i) => {
    const chat = random() < 0.5;
    const n = random() < 0.2 ? 2 : 1;
    const max_tokens = 4 + Math.floor(random() * 60);
    const abortAfter = random() < 0.3 ? 1 + Math.floor(random() * 5) : Infinity;
    const params = { model, max_tokens, n, stream: true, temperature: random() < 0.5 ? 0 : 0.9, seed: i, ignore_eos: random() < 0.5 };
    // A request the client hangs up on is made long (the engine runs a whole batch per step and would
    // otherwise finish short requests before the hang-up reaches it), so the cancellation is exercised.
    if (abortAfter !== Infinity) Object.assign(params, { max_tokens: 200, ignore_eos: true });
    try {
      const stream = chat
        ? await client.chat.completions.create({ ...params, messages: [{ role: 'user', content: `request ${i}` }] })
        : await client.completions.create({ ...params, prompt: `request ${i}: ` });
      let chunks = 0;
      const finish = new Set();
      for await (const chunk of stream) {
        for (const c of chunk.choices) if (c.finish_reason) finish.add(c.index);
        if (++chunks >= abortAfter) break;  // hang up early: the server must cancel and free the blocks
      }
      if (chunks >= abortAfter && finish.size < n) outcomes.aborted++;
      else if (finish.size === n) outcomes.completed++;
      else problems.push(`request ${i}: the stream ended with ${finish.size} of ${n} choices finished`);
    } catch (e) {
      if (e.status === 429) outcomes.rejected++;
      else problems.push(`request ${i}: ${e.status ?? ''} ${e.message}`);
    }
  };
  const bad = async (i) => {
    const bodies = ['{', '[]', '{"prompt": 1}', '{"prompt": "x", "top_p": 0}', '{"messages": [{"role": 1}]}'];
    const chat = i % 2 === 1;
    const r = await fetch(`${base}/v1/${chat ? 'chat/' : ''}completions`, { method: 'POST', headers: auth, body: bodies[i % bodies.length] });
    const body = await r.json();
    if (r.status === 400 && body.error?.type === 'invalid_request_error') outcomes.malformed++;
    else problems.push(`malformed request ${i}: ${r.status} ${JSON.stringify(body)}`);
  };

  const work = [];
  for (let i = 0; i < total; i++) work.push(one(i));
  for (let i = 0; i < malformed; i++) work.push(bad(i));
  const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error('the soak ran past 90 s')), 90_000));
  await check(`soak: ${total} concurrent streams, ${malformed} malformed requests`, async () => {
    await Promise.race([Promise.all(work), deadline]);
    soaking = false;
    await health;
    console.log(`     ${JSON.stringify(outcomes)}; /health answered ${healthChecks} times, slowest ${healthWorst} ms`);
    assert.deepEqual(problems, []);
    assert.equal(outcomes.completed + outcomes.aborted + outcomes.rejected, total);
    assert.equal(outcomes.malformed, malformed);
    assert.ok(outcomes.completed > 0 && outcomes.aborted > 0);
    assert.ok(healthChecks > 0);
  });

  await check('soak: blocks and queues return to 0', async () => {
    let m;
    for (let tries = 0; tries < 100; tries++) {
      m = await metrics();
      if (m.value('roofline_kv_blocks_used') === 0 && m.value('roofline_requests_running') === 0 &&
          m.value('roofline_requests_waiting') === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(m.value('roofline_kv_blocks_used'), 0);
    assert.equal(m.value('roofline_requests_running'), 0);
    assert.equal(m.value('roofline_requests_waiting'), 0);
    assert.ok(m.value('roofline_kv_blocks_total') > 0);
    assert.ok(m.value('roofline_requests_total{status="cancelled"}') > 0, 'hang-ups count as cancelled');
    assert.ok(m.value('roofline_requests_total{status="completed"}') >= outcomes.completed);
    assert.ok(m.value('roofline_generated_tokens_total') > 0);
    assert.ok(m.value('roofline_ttft_seconds_count') > 0);
    assert.match(m.text, /^roofline_e2e_seconds_bucket\{le="\+Inf"\} \d+$/m);
    assert.match(m.text, /^roofline_prefix_cache_hit_ratio \S+$/m);
  });
}

async function drainPhase() {
  await check('SIGTERM drains: running streams finish, new work is refused', async () => {
    // Pooled connections left idle by the soak may have passed the server's keep-alive timeout unnoticed
    // when this process was starved: like a real client, retry a request that never reached the server.
    const retrying = client.withOptions({ maxRetries: 2 });
    const streams = [];
    for (let i = 0; i < 64; i++)
      streams.push(retrying.completions.create({
        model, prompt: `drain ${i}`, max_tokens: 200, ignore_eos: true, stream: true, stream_options: { include_usage: true },
      }));
    const opened = await Promise.all(streams);
    const results = opened.map((s) => drain(s, false));
    process.kill(Number(process.env.ROOFLINE_SERVER_PID), 'SIGTERM');
    await new Promise((res) => setTimeout(res, 50));
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 503);
    const e = await apiError(client.completions.create({ model, prompt: 'late', max_tokens: 2 }));
    assert.equal(e.status, 503);
    for (const r of await Promise.all(results)) {
      assert.equal(r.finish[0], 'length');
      assert.equal(r.usage.completion_tokens, 200);
    }
  });
}

const phases = { api: apiPhase, soak: soakPhase, drain: drainPhase };
for (const name of process.argv.slice(2)) await phases[name]();
process.exit(failures ? 1 : 0);
