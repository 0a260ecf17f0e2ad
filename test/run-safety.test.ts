// The pieces that keep a run's output directory safe: the exclusive lock (live holder refused, dead
// holder's lock taken over), stale temporaries of dead processes removed (live ones kept), and
// state.json validated field by field.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { LOCK_FILE, acquireRunLock } from '../lib/train/run-lock.js'
import { removeStaleTemporaries } from '../lib/train/stale-temporaries.js'
import { validateCheckpointState } from '../lib/train/checkpoint-state.js'

const dir = mkdtempSync(join(tmpdir(), 'simcsepp-safety-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// A pid that is certainly not running: a child that has exited.
const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!

t.test('run lock: one holder at a time; a dead holder is replaced', async (t) => {
  const out = mkdtempSync(join(dir, 'lock-'))
  const lock = acquireRunLock(out)
  t.ok(existsSync(join(out, LOCK_FILE)))
  t.throws(() => acquireRunLock(out), /already in use by a training in this process/)
  lock.release()
  t.notOk(existsSync(join(out, LOCK_FILE)), 'release removes the file')
  lock.release() // idempotent

  // Held by a live process (our parent shell's pid is alive): refused, naming the pid.
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: process.ppid, host: hostname(), started: '2026-01-01T00:00:00Z' }))
  t.throws(() => acquireRunLock(out), new RegExp(`in use by another training \\(pid ${process.ppid}, started 2026-01-01`))
  // Held by a dead process: taken over.
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: deadPid, host: hostname(), started: 'x' }))
  const again = acquireRunLock(out)
  again.release()
  // Another host's lock is never judged by our process table.
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: deadPid, host: 'elsewhere', started: 'x' }))
  t.throws(() => acquireRunLock(out), /on host elsewhere/)
})

t.test("stale temporaries: dead processes' removed, live ones kept", async (t) => {
  const out = mkdtempSync(join(dir, 'tmp-'))
  mkdirSync(join(out, `checkpoint.tmp-${deadPid}`))
  writeFileSync(join(out, `checkpoint.tmp-${deadPid}`, 'state.safetensors'), 'x'.repeat(1000))
  writeFileSync(join(out, `train.jsonl.tmp-${deadPid}`), 'x')
  mkdirSync(join(out, '1_Pooling'))
  writeFileSync(join(out, '1_Pooling', `config.json.tmp-${deadPid}`), 'x')
  writeFileSync(join(out, `model.safetensors.tmp-${process.ppid}`), 'x') // a live process's
  writeFileSync(join(out, 'notes.tmp-abc'), 'x') // not ours
  const removed = await removeStaleTemporaries(out)
  t.same(removed.sort(), [`1_Pooling/config.json.tmp-${deadPid}`, `checkpoint.tmp-${deadPid}`, `train.jsonl.tmp-${deadPid}`].sort())
  t.ok(existsSync(join(out, `model.safetensors.tmp-${process.ppid}`)))
  t.ok(existsSync(join(out, 'notes.tmp-abc')))
})

t.test('state.json is validated field by field', async (t) => {
  const good = { step: 10, dataPosition: { epoch: 0, index: 640 }, seed: 42, best: null, options: {}, elapsedSeconds: 1.5 }
  t.same(validateCheckpointState(good, 'f'), good)
  const bad: [string, unknown, RegExp][] = [
    ['step as a word', { ...good, step: 'ten' }, /f: field step must be a non-negative integer \(found "ten"\)/],
    ['negative step', { ...good, step: -1 }, /field step/],
    ['fractional step', { ...good, step: 1.5 }, /field step/],
    ['missing options', { ...good, options: undefined }, /field options must be an object .*found nothing/],
    ['options an array', { ...good, options: [] }, /field options/],
    ['bad position', { ...good, dataPosition: { epoch: 0 } }, /field dataPosition.index/],
    ['bad best', { ...good, best: { step: 1, spearman: 'high' } }, /field best.spearman/],
    ['bad retrieval best', { ...good, best: { step: 1, ndcgAt10: Infinity } }, /field best.ndcgAt10 must be a finite number/],
    ['missing best', { ...good, best: undefined }, /field best must be null or an object/],
    ['NaN elapsed', { ...good, elapsedSeconds: null }, /field elapsedSeconds/],
    ['bad fingerprint', { ...good, data: { bytes: 1, lines: 1, sha256: 'zz' } }, /field data must be/],
    ['not an object', [1, 2], /must be a JSON object/],
  ]
  for (const [name, value, re] of bad) t.throws(() => validateCheckpointState(value, 'f'), re, name)
  // A best whose correlation was undefined (every similarity equal: NaN, written as null) reads back as NaN.
  const undefinedBest = validateCheckpointState({ ...good, best: { step: 0, spearman: null } }, 'f')
  t.same(undefinedBest.best, { step: 0, spearman: NaN })
})
