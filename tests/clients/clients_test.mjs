// Drives `g3n serve` with the unmodified `ollama` and `openai` npm clients.
// Usage: node clients_test.mjs <path to g3n> <path to a .gguf> [<vision projector .gguf> <image file>
//   [<audio projector .gguf> <audio file>]]
// With a projector and an image, a model "seeing" (the .gguf plus the projector) gets images through
// ollama.generate, ollama.chat and openai chat.completions. With an audio projector and a recording, a model
// "hearing" gets it through openai chat.completions input_audio parts and audio.transcriptions/translations
// ("whisper-1" mapped to it by G3N_TRANSCRIBE_MODEL).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI, { toFile } from 'openai';

const [g3n, gguf, mmproj, imagePath, audioProjector, audioPath] = process.argv.slice(2);
if (!g3n || !gguf || (mmproj && !imagePath)) {
  console.error('usage: node clients_test.mjs G3N_BINARY MODEL.gguf [MMPROJ.gguf IMAGE]');
  process.exit(2);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const store = mkdtempSync(join(tmpdir(), 'g3n-clients-'));
const env = { ...process.env, G3N_MODELS: store, OLLAMA_MODELS: join(store, 'no-ollama'), G3N_TRANSCRIBE_MODEL: 'hearing' };
execFileSync(g3n, ['create', 'tiny', '--from', gguf], { env, stdio: 'inherit' });
if (mmproj) execFileSync(g3n, ['create', 'seeing', '--from', gguf, '--mmproj', mmproj], { env, stdio: 'ignore' });
if (audioProjector) execFileSync(g3n, ['create', 'hearing', '--from', gguf, '--mmproj', audioProjector], { env, stdio: 'ignore' });
const port = await freePort();
const host = `http://127.0.0.1:${port}`;
const server = spawn(g3n, ['serve', '--host', `127.0.0.1:${port}`, '--threads', '1'], { env, stdio: ['ignore', 'ignore', 'inherit'] });

let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(host)).ok) break;
    } catch {}
    if (i > 100) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const ollama = new Ollama({ host });
  const opts = { temperature: 0, num_predict: 8 };
  const schema = {
    type: 'object',
    properties: { city: { type: 'string', maxLength: 10 }, rank: { type: 'integer' }, sunny: { type: 'boolean' } },
    required: ['city', 'rank', 'sunny'],
  };

  await check('ollama list', async () => {
    const r = await ollama.list();
    assert.ok(r.models.some((m) => m.name === 'tiny:latest'), JSON.stringify(r));
  });
  await check('ollama show', async () => {
    const r = await ollama.show({ model: 'tiny' });
    assert.equal(r.model_info['general.architecture'], 'gemma3n');
    assert.equal(r.details.format, 'gguf');
    assert.ok(r.capabilities.includes('tools'), JSON.stringify(r.capabilities));
  });
  let whole;
  await check('ollama generate', async () => {
    const r = await ollama.generate({ model: 'tiny', prompt: 'Hello', options: opts });
    assert.equal(r.done, true);
    assert.equal(r.eval_count, 8);
    assert.ok(r.total_duration > 0 && r.eval_duration > 0);
    whole = r.response;
  });
  await check('ollama generate streaming', async () => {
    let text = '', last;
    for await (const part of await ollama.generate({ model: 'tiny', prompt: 'Hello', options: opts, stream: true })) {
      text += part.response;
      last = part;
    }
    assert.equal(last.done, true);
    assert.equal(text, whole);
  });
  await check('ollama chat', async () => {
    const r = await ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], options: opts });
    assert.equal(r.message.role, 'assistant');
    assert.equal(r.eval_count, 8);
  });
  await check('ollama chat streaming', async () => {
    let parts = 0, last;
    for await (const part of await ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], options: opts, stream: true })) {
      parts++;
      last = part;
    }
    assert.ok(parts >= 2);
    assert.equal(last.done, true);
  });
  await check('ollama chat JSON schema', async () => {
    const r = await ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 'A city?' }], format: schema, options: { temperature: 0, num_predict: 200 } });
    const v = JSON.parse(r.message.content);
    assert.equal(typeof v.city, 'string');
    assert.ok(Number.isInteger(v.rank));
    assert.equal(typeof v.sunny, 'boolean');
  });
  await check('ollama unknown model rejects', async () => {
    await assert.rejects(ollama.generate({ model: 'absent', prompt: 'x' }), /not found/);
  });

  const unitNorm = (v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  await check('ollama embed', async () => {
    const r = await ollama.embed({ model: 'tiny', input: ['Hello there', 'A second input'] });
    assert.equal(r.embeddings.length, 2);
    for (const v of r.embeddings) {
      assert.equal(v.length, 256);
      assert.ok(Math.abs(unitNorm(v) - 1) < 1e-5, `norm ${unitNorm(v)}`);
    }
    assert.notDeepEqual(r.embeddings[0], r.embeddings[1]);
    assert.ok(r.prompt_eval_count > 2);
    const one = await ollama.embed({ model: 'tiny', input: 'Hello there', dimensions: 16 });
    assert.equal(one.embeddings[0].length, 16);
    assert.ok(Math.abs(unitNorm(one.embeddings[0]) - 1) < 1e-5);
    console.log(`     ollama embed: ${r.embeddings.length} x ${r.embeddings[0].length}, norms ${r.embeddings.map((v) => unitNorm(v).toFixed(6)).join(', ')}, ` +
      `[0][0..3] ${r.embeddings[0].slice(0, 4).map((x) => x.toFixed(5)).join(', ')}, prompt_eval_count ${r.prompt_eval_count}; dimensions 16 -> ${one.embeddings[0].length}`);
  });
  const openai = new OpenAI({ baseURL: `${host}/v1`, apiKey: 'unused' });
  await check('openai embeddings.create', async () => {
    // The client asks for base64 by default and decodes it; float is asked for explicitly.
    const r = await openai.embeddings.create({ model: 'tiny', input: ['Hello there', 'A second input'] });
    const f = await openai.embeddings.create({ model: 'tiny', input: ['Hello there', 'A second input'], encoding_format: 'float' });
    assert.equal(r.data.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.equal(r.data[i].index, i);
      assert.equal(r.data[i].embedding.length, 256);
      assert.ok(Math.abs(unitNorm(r.data[i].embedding) - 1) < 1e-5);
      assert.deepEqual(Array.from(r.data[i].embedding), f.data[i].embedding);
    }
    assert.ok(r.usage.prompt_tokens > 2);
    console.log(`     openai embeddings (base64, decoded by the client): ${r.data.length} x ${r.data[0].embedding.length}, ` +
      `[0][0..3] ${Array.from(r.data[0].embedding.slice(0, 4)).map((x) => x.toFixed(5)).join(', ')}, equal to float: yes, usage ${JSON.stringify(r.usage)}`);
  });
  await check('openai models.list', async () => {
    const r = await openai.models.list();
    assert.ok(r.data.some((m) => m.id === 'tiny:latest'));
  });
  let content;
  await check('openai chat.completions', async () => {
    const r = await openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0 });
    assert.equal(r.usage.completion_tokens, 6);
    assert.equal(r.choices[0].finish_reason, 'length');
    content = r.choices[0].message.content;
  });
  await check('openai chat.completions streaming', async () => {
    const stream = await openai.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = '', usage;
    for await (const chunk of stream) {
      if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, content);
    assert.equal(usage.completion_tokens, 6);
  });
  await check('openai completions', async () => {
    const r = await openai.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 4, temperature: 0 });
    assert.equal(typeof r.choices[0].text, 'string');
    assert.equal(r.usage.completion_tokens, 4);
  });
  // Log-probabilities and n choices (docs/server.md "Log-probabilities"). The installed ollama client's types
  // have no logprobs fields yet; like tool_choice below, it passes them through and returns what the server sent.
  const showLogprobs = (label, steps) =>
    console.log(`     ${label}: ` + steps.slice(0, 3).map((s) => `${JSON.stringify(s.token)} ${s.logprob.toFixed(4)} [` +
      (s.top_logprobs ?? []).map((t) => `${JSON.stringify(t.token)} ${t.logprob.toFixed(4)}`).join(', ') + ']').join('; '));
  await check('ollama generate logprobs', async () => {
    const r = await ollama.generate({ model: 'tiny', prompt: 'Hi', logprobs: true, top_logprobs: 3, options: opts });
    assert.equal(r.logprobs.length, r.eval_count);
    for (const s of r.logprobs) {
      assert.equal(typeof s.token, 'string');
      assert.ok(s.logprob <= 0);
      assert.equal(s.top_logprobs.length, 3);
      assert.equal(s.token, s.top_logprobs[0].token);  // greedy: the likeliest token
    }
    showLogprobs('ollama generate', r.logprobs);
  });
  await check('ollama chat streaming logprobs', async () => {
    const stream = await ollama.chat({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], stream: true, logprobs: true, options: opts });
    let n = 0, evals;
    for await (const part of stream) {
      n += part.logprobs?.length ?? 0;
      if (part.done) evals = part.eval_count;
    }
    assert.equal(n, evals);
  });
  await check('openai chat.completions logprobs top_logprobs 3 and n 3', async () => {
    const r = await openai.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 1, seed: 7, n: 3, logprobs: true, top_logprobs: 3,
    });
    assert.equal(r.choices.length, 3);
    let tokens = 0;
    r.choices.forEach((c, i) => {
      assert.equal(c.index, i);
      tokens += c.logprobs.content.length;
      for (const e of c.logprobs.content) {
        assert.ok(Array.isArray(e.bytes));
        assert.equal(e.top_logprobs.length, 3);
        assert.ok(e.logprob <= e.top_logprobs[0].logprob + 1e-6);
      }
      showLogprobs(`openai chat choice ${i} ${JSON.stringify(c.message.content)}`, c.logprobs.content);
    });
    assert.equal(r.usage.completion_tokens, tokens);
    // seed: the same request answers the same.
    const again = await openai.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 1, seed: 7, n: 3, logprobs: true, top_logprobs: 3,
    });
    assert.deepEqual(again.choices.map((c) => c.logprobs.content.map((e) => e.token)), r.choices.map((c) => c.logprobs.content.map((e) => e.token)));
  });
  await check('openai chat.completions streaming n 2 with logprobs', async () => {
    const stream = await openai.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, n: 2, logprobs: true, stream: true,
    });
    const counts = [0, 0];
    for await (const chunk of stream) for (const c of chunk.choices) counts[c.index] += c.logprobs?.content?.length ?? 0;
    assert.deepEqual(counts, [6, 6]);
  });
  await check('openai completions logprobs', async () => {
    const r = await openai.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 4, temperature: 0, logprobs: 2 });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, 4);
    assert.equal(lp.token_logprobs.length, 4);
    assert.equal(lp.text_offset[0], 0);
    assert.ok(Object.keys(lp.top_logprobs[0]).length >= 1);
    console.log(`     openai completions: tokens ${JSON.stringify(lp.tokens)} token_logprobs ${JSON.stringify(lp.token_logprobs.map((v) => +v.toFixed(4)))} top_logprobs[0] ${JSON.stringify(lp.top_logprobs[0])} text_offset ${JSON.stringify(lp.text_offset)}`);
  });
  await check('openai response_format json_schema', async () => {
    const r = await openai.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'A city?' }], max_tokens: 200, temperature: 0,
      response_format: { type: 'json_schema', json_schema: { name: 'city', schema } },
    });
    const v = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(v).sort(), ['city', 'rank', 'sunny']);
  });
  // Tool calling (docs/server.md "Tools"). The tiny model's weights are random, so the call is forced
  // with tool_choice "required" and one call per turn (parallel_tool_calls false; on /api/chat both are g3n
  // extension fields, which the client passes through), and the answer after the result with "none": the
  // round trip is deterministic at temperature 0.
  const weatherTool = {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } }, required: ['city'] },
    },
  };
  const weatherQuestion = [{ role: 'user', content: 'What is the weather in Paris?' }];
  await check('ollama chat tool call round trip', async () => {
    const messages = [...weatherQuestion];
    const r = await ollama.chat({ model: 'tiny', messages, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, options: { temperature: 0, num_predict: 200 } });
    assert.ok(r.message.tool_calls?.length >= 1, JSON.stringify(r.message));
    const call = r.message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.ok(['Paris', 'Oslo'].includes(call.function.arguments.city), JSON.stringify(call));
    let streamed = [];
    for await (const part of await ollama.chat({ model: 'tiny', messages, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, options: { temperature: 0, num_predict: 200 }, stream: true }))
      streamed = streamed.concat(part.message.tool_calls ?? []);
    assert.deepEqual(streamed.map((c) => c.function), r.message.tool_calls.map((c) => c.function));
    messages.push(r.message, { role: 'tool', tool_name: 'get_weather', content: 'Sunny, 21 C' });
    const a = await ollama.chat({ model: 'tiny', messages, tools: [weatherTool], tool_choice: 'none', options: opts });
    assert.equal(a.message.tool_calls, undefined);
    assert.equal(a.eval_count, 8);
    console.log(`     call ${JSON.stringify(r.message.tool_calls)}; answer ${JSON.stringify(a.message.content)}`);
  });
  await check('openai chat.completions tool call round trip', async () => {
    const messages = [...weatherQuestion];
    const req = { model: 'tiny', messages, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, temperature: 0, max_tokens: 200 };
    const r = await openai.chat.completions.create(req);
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.match(call.id, /^call_/);
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.ok(['Paris', 'Oslo'].includes(args.city), call.function.arguments);
    // Streamed: delta.tool_calls pieces, put together by index as clients do.
    const calls = [];
    let finish;
    for await (const chunk of await openai.chat.completions.create({ ...req, stream: true })) {
      for (const d of chunk.choices[0]?.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: d.id, name: '', arguments: '' };
        calls[d.index].name += d.function?.name ?? '';
        calls[d.index].arguments += d.function?.arguments ?? '';
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(calls.map((c) => [c.name, c.arguments]), choice.message.tool_calls.map((c) => [c.function.name, c.function.arguments]));
    messages.push(choice.message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ city: args.city, sky: 'sunny', celsius: 21 }) });
    const a = await openai.chat.completions.create({ ...req, messages, tool_choice: 'none', max_tokens: 6 });
    assert.equal(a.choices[0].finish_reason, 'length');
    assert.equal(a.choices[0].message.tool_calls, undefined);
    assert.equal(a.usage.completion_tokens, 6);
    console.log(`     call ${JSON.stringify(call)}; answer ${JSON.stringify(a.choices[0].message.content)}`);
  });
  if (mmproj) {
    // An image is 256 soft rows plus its <start_of_image> and <end_of_image> rows, with "\n\n" before
    // and after: at least 258 rows more than the same text alone. (The tiny fixture's vocabulary has no
    // <start_of_image> piece, so there the marker is spelled out as text: a few more rows.)
    const imageRows = 258;
    const question = 'What is in this picture?';
    const bytes = readFileSync(imagePath);
    const textOnly = (await ollama.generate({ model: 'seeing', prompt: question, options: opts })).prompt_eval_count;
    const extra = (n) => {
      assert.ok(n - textOnly >= imageRows && n - textOnly < imageRows + 32, `prompt rows ${n}, text alone ${textOnly}`);
      return `prompt ${n} rows = text ${textOnly} + image ${n - textOnly}`;
    };
    await check('ollama generate with an image', async () => {
      const r = await ollama.generate({ model: 'seeing', prompt: question, images: [bytes], options: opts });
      assert.equal(r.done, true);
      assert.equal(r.eval_count, 8);
      assert.ok(r.response.length > 0, 'empty reply');
      console.log(`     ${extra(r.prompt_eval_count)}; reply ${JSON.stringify(r.response)}`);
    });
    await check('ollama chat with messages images', async () => {
      // A path: the client reads the file and sends it base64.
      const r = await ollama.chat({ model: 'seeing', messages: [{ role: 'user', content: question, images: [imagePath] }], options: opts });
      assert.equal(r.message.role, 'assistant');
      assert.equal(r.eval_count, 8);
      assert.ok(r.message.content.length > 0, 'empty reply');
      console.log(`     ${extra(r.prompt_eval_count)}; reply ${JSON.stringify(r.message.content)}`);
    });
    await check('openai chat.completions with an image_url data URL', async () => {
      const url = `data:image/${imagePath.endsWith('.png') ? 'png' : 'jpeg'};base64,${bytes.toString('base64')}`;
      const r = await openai.chat.completions.create({
        model: 'seeing', max_tokens: 8, temperature: 0,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: question }] }],
      });
      assert.equal(r.usage.completion_tokens, 8);
      assert.ok(r.choices[0].message.content.length > 0, 'empty reply');
      console.log(`     ${extra(r.usage.prompt_tokens)}; reply ${JSON.stringify(r.choices[0].message.content)}`);
    });
    await check('openai remote image URL is a 400', async () => {
      await assert.rejects(
        openai.chat.completions.create({
          model: 'seeing', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }],
        }),
        (e) => e.status === 400 && /no outbound requests/.test(e.message),
      );
    });
    await check('ollama image for a model without a projector rejects', async () => {
      await assert.rejects(ollama.generate({ model: 'tiny', prompt: 'x', images: [bytes] }), /no vision projector/);
    });
  }
  if (audioProjector) {
    const wav = readFileSync(audioPath);
    await check('openai audio.transcriptions.create', async () => {
      const r = await openai.audio.transcriptions.create({ file: await toFile(wav, 'speech.wav'), model: 'whisper-1' });
      assert.equal(typeof r.text, 'string');
      const v = await openai.audio.transcriptions.create({ file: await toFile(wav, 'speech.wav'), model: 'hearing', response_format: 'verbose_json' });
      assert.equal(v.segments.length, 1);
      assert.equal(v.segments[0].start, 0);
      console.log(`     ${v.duration.toFixed(2)} s, text ${JSON.stringify(r.text.slice(0, 40))}`);
    });
    await check('openai audio.translations.create', async () => {
      const r = await openai.audio.translations.create({ file: await toFile(wav, 'speech.wav'), model: 'whisper-1' });
      assert.equal(typeof r.text, 'string');
    });
    await check('openai chat.completions with an input_audio part', async () => {
      const data = wav.toString('base64');
      const text = await openai.chat.completions.create({ model: 'hearing', max_tokens: 4, temperature: 0, messages: [{ role: 'user', content: 'What is said?' }] });
      const r = await openai.chat.completions.create({
        model: 'hearing', max_tokens: 4, temperature: 0,
        messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data, format: 'wav' } }, { type: 'text', text: 'What is said?' }] }],
      });
      assert.ok(r.usage.prompt_tokens - text.usage.prompt_tokens >= 190, 'the audio block is missing');
      console.log(`     ${r.usage.prompt_tokens - text.usage.prompt_tokens} rows for the clip; reply ${JSON.stringify(r.choices[0].message.content)}`);
    });
  }
  // Making models over HTTP: ollama.create from a store model, and from blobs uploaded with /api/blobs
  // (the npm client sends `files` as given; the upload is a plain POST, as Ollama's CLI makes it).
  await check('ollama create from a model with system and parameters', async () => {
    const r = await ollama.create({ model: 'pirate', from: 'tiny', system: 'Talk like a pirate.', parameters: { temperature: 0.4, stop: ['<x>'] } });
    console.log(`     create -> ${JSON.stringify(r)}`);
    assert.equal(r.status, 'success');
    const show = await ollama.show({ model: 'pirate' });
    assert.equal(show.system, 'Talk like a pirate.');
    assert.match(show.parameters, /temperature\s+0\.4/);
    assert.match(show.parameters, /stop\s+"<x>"/);
    const g = await ollama.generate({ model: 'pirate', prompt: 'Hello', options: { num_predict: 2 } });
    assert.equal(g.eval_count, 2);
  });
  await check('ollama create streaming progress', async () => {
    const statuses = [];
    for await (const p of await ollama.create({ model: 'pirate2', from: 'pirate', template: '{{ .Prompt }}', stream: true })) statuses.push(p.status);
    console.log(`     ${statuses.map((s) => JSON.stringify(s)).join(', ')}`);
    assert.equal(statuses.at(-1), 'success');
    assert.equal(statuses.at(-2), 'writing manifest');
    assert.ok(statuses.some((s) => s.startsWith('using existing layer sha256:')));
  });
  const uploadBlob = async (path) => {
    const data = readFileSync(path);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    // The store may hold it already (the models above were made from these files): then 200, else 201.
    const had = (await fetch(`${host}/api/blobs/${digest}`, { method: 'HEAD' })).status;
    assert.ok(had === 200 || had === 404, `HEAD ${had}`);
    const r = await fetch(`${host}/api/blobs/${digest}`, { method: 'POST', body: data });
    assert.equal(r.status, had === 200 ? 200 : 201, await r.text());
    assert.equal((await fetch(`${host}/api/blobs/${digest}`, { method: 'HEAD' })).status, 200);
    return digest;
  };
  await check('ollama create from uploaded blobs', async () => {
    const files = { 'model.gguf': await uploadBlob(gguf) };
    if (mmproj) files['mmproj.gguf'] = await uploadBlob(mmproj);
    const r = await ollama.create({ model: 'uploaded', files });
    console.log(`     create ${JSON.stringify(Object.keys(files))} -> ${JSON.stringify(r)}`);
    assert.equal(r.status, 'success');
    const show = await ollama.show({ model: 'uploaded' });
    assert.equal(show.model_info['general.architecture'], 'gemma3n');
    if (mmproj) assert.ok(show.capabilities.includes('vision'), JSON.stringify(show.capabilities));
    const g = await ollama.generate({ model: 'uploaded', prompt: 'Hello', options: { num_predict: 2 } });
    assert.equal(g.eval_count, 2);
  });
  await check('ollama create from an uploaded safetensors checkpoint', async () => {
    // A Hugging Face checkpoint directory (a random tiny model's, written by g3n create-random --hf), every
    // file uploaded as a blob and named in `files`, as Ollama's CLI sends a checkpoint directory.
    const dir = join(store, 'hf-checkpoint');
    execFileSync(g3n, ['create-random', join(store, 'random.gguf'), '--preset', 'tiny', '--quant', 'f16', '--hf', dir, '--hf-dtype', 'F16'], { env, stdio: 'ignore' });
    const files = {};
    for (const f of readdirSync(dir)) files[f] = await uploadBlob(join(dir, f));
    const statuses = [];
    for await (const p of await ollama.create({ model: 'from-safetensors', files, quantize: 'q8_0', stream: true })) statuses.push(p.total ? `${p.status} ${p.completed}/${p.total}` : p.status);
    console.log(`     create ${JSON.stringify(Object.keys(files))} -> ${statuses.map((s) => JSON.stringify(s)).join(', ')}`);
    assert.equal(statuses[0], 'converting model');
    assert.equal(statuses.at(-1), 'success');
    const show = await ollama.show({ model: 'from-safetensors' });
    assert.equal(show.model_info['general.architecture'], 'gemma3n');
    assert.equal(show.details.quantization_level, 'Q8_0');
    const g = await ollama.generate({ model: 'from-safetensors', prompt: 'Hello', options: { num_predict: 2 } });
    assert.equal(g.eval_count, 2);
    await assert.rejects(ollama.create({ model: 'x', files: { 'config.json': files['config.json'] } }), /tokenizer\.json is missing/);
  });
  await check('ollama create errors reject', async () => {
    await assert.rejects(ollama.create({ model: 'x', from: 'absent' }), /model 'absent' not found/);
    await assert.rejects(ollama.create({ model: 'x', files: { 'model.gguf': `sha256:${'0'.repeat(64)}` } }), /not found/);
    await assert.rejects(ollama.create({ model: 'x', from: 'tiny', adapters: { 'lora.gguf': `sha256:${'0'.repeat(64)}` } }), /adapters are not supported/);
  });
  await check('openai unknown model is a 404', async () => {
    await assert.rejects(openai.chat.completions.create({ model: 'absent', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 404);
  });
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e}`);
} finally {
  server.kill('SIGTERM');
  rmSync(store, { recursive: true, force: true });
}
console.log(failed ? `${failed} client check(s) failed` : 'all client checks passed');
process.exit(failed ? 1 : 0);
