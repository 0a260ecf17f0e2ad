// sentence-transformers prompts (config_sentence_transformers.json: e5's "query: ", bge's instruction, ...):
// encode's prompt and promptName, the default prompt, errors naming the file or the known prompts, and the CLI
// (encode --prompt-name, eval --retrieval taking the model's query and document prompts).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SentenceEncoder, evaluateRetrieval, readBeirDataset } from '../lib/index.js'
import { cli, needsCli } from './helpers/train-corpus.js'
import { saveTinyModel, writePoolingConfig } from './helpers/encoder-tiny-model.js'

const bits = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)
const same = (a: Float32Array, b: Float32Array) => bits(a).equals(bits(b))
const PROMPTS = { query: 'query: ', document: 'passage: ' }

async function modelWithPrompts(extra: Record<string, unknown> = {}): Promise<string> {
  const dir = await saveTinyModel({ seed: 5 })
  writeFileSync(join(dir, 'config_sentence_transformers.json'), JSON.stringify({ prompts: PROMPTS, default_prompt_name: null, ...extra }))
  return dir
}

t.test('encode with a prompt is encode of the prefixed sentence, bit for bit', async (t) => {
  const enc = await SentenceEncoder.load(await modelWithPrompts(), { device: 'cpu' })
  t.teardown(() => enc.close())
  t.same(enc.prompts, PROMPTS)
  t.equal(enc.defaultPromptName, undefined)
  const s = ['the cat sat on the mat', 'a dog runs fast']
  const [q, d, plain, prefixedQ, prefixedD] = await Promise.all([
    enc.encode(s, { promptName: 'query' }),
    enc.encode(s, { prompt: 'passage: ' }),
    enc.encode(s),
    enc.encode(s.map((x) => 'query: ' + x)),
    enc.encode(s.map((x) => 'passage: ' + x)),
  ])
  for (let i = 0; i < s.length; i++) {
    t.ok(same(q[i], prefixedQ[i]), `promptName 'query', sentence ${i}`)
    t.ok(same(d[i], prefixedD[i]), `prompt 'passage: ', sentence ${i}`)
    t.notOk(same(q[i], plain[i]), `the prompt changes sentence ${i}'s vector`)
  }
  t.ok(same(await enc.encode('a red house', { promptName: 'query' }), await enc.encode('query: a red house')), 'one sentence')
  await t.rejects(enc.encode(s, { prompt: 'x', promptName: 'query' }), /encode: give prompt or promptName, not both/)
  await t.rejects(
    enc.encode(s, { promptName: 'passage' }),
    /promptName "passage" is not one of the model's prompts \("query", "document"\)/,
  )
  await t.rejects(enc.encode(s, { prompt: 3 as never }), /encode: prompt must be a string, got a number \(3\)/)
})

t.test("default_prompt_name applies when encode is given none; prompt '' turns it off", async (t) => {
  const dir = await modelWithPrompts({ default_prompt_name: 'query' })
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  t.equal(enc.defaultPromptName, 'query')
  const s = ['a big river']
  t.ok(same((await enc.encode(s))[0], (await enc.encode(['query: a big river'], { prompt: '' }))[0]), 'the default prompt')
  t.ok(
    same((await enc.encode(s, { promptName: 'document' }))[0], (await enc.encode(['passage: a big river'], { prompt: '' }))[0]),
    'a named one instead',
  )
  const bare = await SentenceEncoder.load(await saveTinyModel({ seed: 5 }), { device: 'cpu' })
  t.teardown(() => bare.close())
  t.ok(same((await enc.encode(s, { prompt: '' }))[0], (await bare.encode(s))[0]), "prompt '' is the model without prompts")
  await t.rejects(bare.encode(s, { promptName: 'query' }), /has no config_sentence_transformers\.json prompts/)
})

t.test('bad prompt settings are errors naming the file; include_prompt false is refused when a prompt applies', async (t) => {
  await t.rejects(
    SentenceEncoder.load(await modelWithPrompts({ prompts: { query: 1 } }), { device: 'cpu' }),
    /config_sentence_transformers\.json: prompt "query" must be a string, got 1/,
  )
  await t.rejects(
    SentenceEncoder.load(await modelWithPrompts({ default_prompt_name: 'search' }), { device: 'cpu' }),
    /config_sentence_transformers\.json: default_prompt_name "search" is not one of its prompts \(query, document\)/,
  )
  const dir = await modelWithPrompts()
  writePoolingConfig(dir, 'mean')
  const pooling = join(dir, '1_Pooling', 'config.json')
  writeFileSync(pooling, JSON.stringify({ word_embedding_dimension: 32, pooling_mode_mean_tokens: true, include_prompt: false }))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  t.equal((await enc.encode('a cat')).length, 32, 'no prompt: encodes')
  // include_prompt false: the prompt's tokens are attended to but not averaged (test/transformers-parity.test.ts holds
  // the vectors to sentence-transformers' own); so not the vector of the prefixed text.
  const left = await enc.encode('a cat', { promptName: 'query' })
  const kept = await enc.encode('query: a cat')
  t.ok(left.every(Number.isFinite) && left.some((v, i) => Math.abs(v - kept[i]) > 1e-4), 'the prompt left out of the mean')
})

t.test('simcsepp encode --prompt-name; eval --retrieval takes the model prompts', needsCli, async (t) => {
  const model = await modelWithPrompts()
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
  const named = run('encode', '--model', model, '--device', 'cpu', '--prompt-name', 'query', 'a cat')
  const prefixed = run('encode', '--model', model, '--device', 'cpu', 'query: a cat')
  t.equal(named.status, 0, named.stderr)
  t.equal(named.stdout, prefixed.stdout, '--prompt-name query = the prefixed sentence')
  t.equal(run('encode', '--model', model, '--prompt', 'query: ', 'a cat').stdout, prefixed.stdout, '--prompt')
  const unknown = run('encode', '--model', model, '--prompt-name', 'nope', 'a cat')
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, /promptName "nope" is not one of the model's prompts/)
  t.equal(unknown.stdout, '', 'nothing written')

  const beir = mkdtempSync(join(tmpdir(), 'simcsepp-beir-'))
  writeFileSync(
    join(beir, 'corpus.jsonl'),
    ['the cat sat', 'a big river', 'a red house'].map((text, i) => JSON.stringify({ _id: `d${i}`, text })).join('\n'),
  )
  writeFileSync(join(beir, 'queries.jsonl'), JSON.stringify({ _id: 'q', text: 'the river' }) + '\n')
  mkdirSync(join(beir, 'qrels'))
  writeFileSync(join(beir, 'qrels', 'test.tsv'), 'q\td1\t1\n')
  const r = run('eval', '--model', model, '--device', 'cpu', '--retrieval', beir, '--json')
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /the model's prompts: queries prefixed "query: ", documents "passage: "/)
  const enc = await SentenceEncoder.load(model, { device: 'cpu' })
  const want = await evaluateRetrieval((s) => enc.encode(s), await readBeirDataset(beir), {
    queryPrefix: 'query: ',
    documentPrefix: 'passage: ',
  })
  const without = await evaluateRetrieval((s) => enc.encode(s), await readBeirDataset(beir))
  await enc.close()
  const got = JSON.parse(r.stdout).retrieval[0]
  t.same(got.scores, JSON.parse(JSON.stringify(want.scores)), "the numbers with the model's prompts")
  const off = run('eval', '--model', model, '--device', 'cpu', '--retrieval', beir, '--json', '--query-prefix', '', '--doc-prefix', '')
  t.equal(off.stderr, '', 'explicit prefixes: no note')
  t.same(JSON.parse(off.stdout).retrieval[0].scores, JSON.parse(JSON.stringify(without.scores)), "--query-prefix '' --doc-prefix '': none")

  // A pooling that refuses prompts (include_prompt false): STS still evaluates (no prompt applies); retrieval, which
  // would take the model's prompts, says why it cannot.
  writePoolingConfig(model, 'mean')
  writeFileSync(
    join(model, '1_Pooling', 'config.json'),
    JSON.stringify({ word_embedding_dimension: 32, pooling_mode_mean_tokens: true, include_prompt: false }),
  )
  const sts = join(beir, 'sts.tsv')
  const rows = ['the cat sat\ta big river\t1', 'a red house\tthe house\t4', 'the river\ta big river\t5', 'a dog\tthe mat\t0']
  writeFileSync(
    sts,
    rows.map((r, i) => `g\tf\t2024\t${i}\t${r.split('\t')[2]}\t${r.split('\t')[0]}\t${r.split('\t')[1]}`).join('\n') + '\n',
  )
  const stsRun = run('eval', '--model', model, '--device', 'cpu', '--sts', sts, '--json')
  t.equal(stsRun.status, 0, `STS with include_prompt false: ${stsRun.stderr}`)
  const retrieval = run('eval', '--model', model, '--device', 'cpu', '--retrieval', beir)
  t.equal(retrieval.status, 0, `retrieval with the prompts left out of the pooling: ${retrieval.stderr}`)
})

t.test("encodeQuery and encodeDocument: sentence-transformers' encode_query and encode_document", async (t) => {
  const s = ['the river is big', 'a red house']
  const bitsOf = (vs: Float32Array[]) => Buffer.concat(vs.map(bits))
  // 'query' and 'document' prompts.
  const enc = await SentenceEncoder.load(await modelWithPrompts(), { device: 'cpu' })
  t.teardown(() => enc.close())
  t.ok(bitsOf(await enc.encodeQuery(s)).equals(bitsOf(await enc.encode(s, { promptName: 'query' }))), "encodeQuery: the 'query' prompt")
  t.ok(bitsOf(await enc.encodeDocument(s)).equals(bitsOf(await enc.encode(s, { promptName: 'document' }))), "encodeDocument: 'document'")
  t.ok(same(await enc.encodeQuery('a cat'), await enc.encode('query: a cat')), 'one query')
  t.ok(bitsOf(await enc.encodeQuery(s, { prompt: '' })).equals(bitsOf(await enc.encode(s))), "a call's own prompt wins")
  t.ok(bitsOf(await enc.encodeQuery(s, { promptName: 'document' })).equals(bitsOf(await enc.encodeDocument(s))), 'and its promptName')
  t.ok(
    bitsOf(await enc.encodeQuery(s, { promptName: undefined })).equals(bitsOf(await enc.encodeQuery(s))),
    'promptName undefined: none given',
  )
  await t.rejects(enc.encodeQuery(s, null as never), /encode: options must be an object/)
  t.equal(enc.rolePrefix('query'), 'query: ')
  t.equal(enc.rolePrefix('document'), 'passage: ')
  // LangChain's retrievers embed queries and documents apart: each with its prompt.
  const lc = enc.asLangChainEmbeddings()
  t.same(await lc.embedQuery('a cat'), Array.from(await enc.encode('query: a cat')), 'embedQuery: the query prompt')
  t.same((await lc.embedDocuments(['a cat']))[0], Array.from(await enc.encode('passage: a cat')), 'embedDocuments: the document prompt')

  // e5's prompts: 'query' and 'passage' (encode_document's second choice); without prompts, plain encode.
  const e5 = await SentenceEncoder.load(await modelWithPrompts({ prompts: { query: 'query: ', passage: 'passage: ' } }), { device: 'cpu' })
  t.teardown(() => e5.close())
  t.ok(bitsOf(await e5.encodeDocument(s)).equals(bitsOf(await e5.encode(s.map((x) => 'passage: ' + x)))), "encodeDocument: 'passage'")
  const bare = await SentenceEncoder.load(await saveTinyModel({ seed: 5 }), { device: 'cpu' })
  t.teardown(() => bare.close())
  t.ok(bitsOf(await bare.encodeQuery(s)).equals(bitsOf(await bare.encode(s))), 'no prompts: encodeQuery is encode')
  t.ok(bitsOf(await bare.encodeDocument(s)).equals(bitsOf(await bare.encode(s))), 'no prompts: encodeDocument is encode')
  t.equal(bare.rolePrefix('document'), '')
  // A default prompt applies when the model has no prompt of the role (as sentence-transformers).
  const dflt = await SentenceEncoder.load(await modelWithPrompts({ prompts: { query: 'query: ' }, default_prompt_name: 'query' }), {
    device: 'cpu',
  })
  t.teardown(() => dflt.close())
  t.equal(dflt.rolePrefix('document'), 'query: ', 'no document prompt: the default one')
})
