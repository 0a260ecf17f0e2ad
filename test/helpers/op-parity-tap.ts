// Runs a table of encoder-op parity cases (helpers/encoder-parity.mjs) under tap against lib/: one subtest
// per group of cases, each check one assertion, then the worst measured error per op as comments.
// Skipped, with the reason printed, when no CUDA device (real or emulated) is usable.
import t from 'tap'
import * as ops from '../../lib/ops.js'
import { addon } from '../../lib/native.js'
import { Tensor, nativeOf } from '../../lib/tensor.js'
import { Bf16Values } from '../../lib/bf16-values.js'
import { WorstErrors, groupCases, type ParityCase } from './encoder-parity.mjs'

/** The lib/ the cases run against. */
export const lib = { Tensor, ops, addon, nativeOf, Bf16Values }

/** Registers the subtests of `cases` on 'cuda' (`what` names them in the skip line), then `summary`. */
export function tapParity(cases: ParityCase[], what: string, summary: string): void {
  const status = addon.cudaStatus()
  const skip = status.available ? false : `CUDA unavailable: ${status.reason}`
  if (skip) console.log(`# skipping the CUDA ${what} tests: ${skip}`)
  const worst = new WorstErrors()
  for (const [group, members] of groupCases(cases)) {
    t.test(group, { skip }, async (t) => {
      for (const c of members)
        for (const check of c.run(lib, 'cuda')) {
          worst.record(check)
          t.ok(check.ok, check.message)
        }
    })
  }
  t.test(summary, { skip }, async (t) => {
    for (const line of worst.lines()) t.comment(line)
    t.ok(worst.lines().length > 0, 'errors were measured')
  })
}
