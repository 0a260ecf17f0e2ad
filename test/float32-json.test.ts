// float32-precision JSON: every float32 reads back exactly, in the fewest digits.
import t from 'tap'
import { float32Json, float32String } from '../lib/util/float32-json.js'

t.test('random float32 bit patterns round-trip in at most 9 digits, no digit to spare', async (t) => {
  let s = 1,
    bad = 0,
    notShortest = 0,
    n = 0
  for (let i = 0; i < 100_000; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const x = new Float32Array(new Uint32Array([s]).buffer)[0]
    if (!Number.isFinite(x)) continue
    n++
    const str = float32String(x)
    if (Math.fround(Number(str)) !== x) bad++
    const digits = str
      .replace(/^-/, '')
      .replace(/e.*$/, '')
      .replace('.', '')
      .replace(/^0+|0+$/g, '').length
    // One digit fewer must not round-trip (checked by toPrecision, which is how shorter candidates look).
    if (digits > 1 && Math.fround(Number(x.toPrecision(digits - 1))) === x) notShortest++
  }
  t.equal(bad, 0, `${n} values read back as the same float32`)
  t.equal(notShortest, 0, 'none has a shorter round-tripping form')
})

t.test('examples and the JSON array', async (t) => {
  t.equal(float32String(Math.fround(0.1)), '0.1')
  t.equal(float32String(Math.fround(-1.5)), '-1.5')
  t.equal(float32String(Math.fround(1e-8)), '1e-8')
  t.equal(float32String(0), '0')
  const v = Float32Array.from([0.1, -0.2, 1 / 3])
  t.equal(float32Json(v), '[0.1,-0.2,0.33333334]')
  t.same(Float32Array.from(JSON.parse(float32Json(v)) as number[]), v, 'parses back to the same float32s')
  t.ok(JSON.stringify(Array.from(v)).length > float32Json(v).length + 20, 'shorter than the double JSON')
})
