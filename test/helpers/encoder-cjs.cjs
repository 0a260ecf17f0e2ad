// Plain CommonJS user of simcsepp, run with `node encoder-cjs.cjs <model-dir> [specifier]`
// by test/sentence-encoder.test.ts. Prints one JSON line.
'use strict'
const simcsepp = require(process.argv[3] || 'simcsepp')
const { SentenceEncoder } = simcsepp

async function main() {
  const enc = await SentenceEncoder.load(process.argv[2], { device: 'cpu' })
  const vecs = await enc.encode(['the cat sat on the mat', 'a dog'], { batchSize: 32 })
  const one = await enc.encode('the cat sat on the mat')
  const esm = await simcsepp.import()
  const out = {
    count: vecs.length,
    dimension: enc.dimension,
    isFloat32: one instanceof Float32Array,
    same: Array.from(one).every((v, i) => v === vecs[0][i]),
    similarity: enc.similarity(vecs[0], one),
    instanceOf: enc instanceof SentenceEncoder,
    esmIsSame: esm.SentenceEncoder !== undefined && enc instanceof esm.SentenceEncoder,
    cuda: typeof (await simcsepp.cudaStatus()).available,
  }
  await enc.close()
  let closedError = ''
  try {
    await enc.encode('x')
  } catch (e) {
    closedError = e.message
  }
  console.log(JSON.stringify({ ...out, closedError }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
