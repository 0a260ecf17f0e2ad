// The TypeScript `Addon` interface (lib/native.ts) and the native addon's exports (native/bind_*.cpp,
// native/addon.cpp) describe the same functions: every interface member is exported by the C++ side
// and every export is declared in the interface. The interface is read with the TypeScript compiler
// API, so the check follows the source rather than a hand-kept list.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { addon } from '../lib/native.js'
import { ENCODER_TRAINING_OPS, encoderCudaBlocker } from '../lib/model/cuda-support.js'

const nativeTs = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'native.ts')

function interfaceMembers(file: string, name: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const members: string[] = []
  let found = false
  const visit = (node: ts.Node): void => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === name) {
      found = true
      for (const m of node.members) {
        if (m.name && (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name))) members.push(m.name.text)
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  if (!found) throw new Error(`interface ${name} not found in ${file}`)
  return members
}

t.test('the Addon interface and the C++ exports list the same functions', async (t) => {
  const declared = interfaceMembers(nativeTs, 'Addon').sort()
  const exported = Object.keys(addon).sort()
  t.ok(declared.length > 30, `the Addon interface declares ${declared.length} members`)
  for (const name of exported) {
    t.equal(typeof (addon as unknown as Record<string, unknown>)[name], 'function', `export ${name} is a function`)
  }
  t.same(
    declared.filter((n) => !exported.includes(n)),
    [],
    'every Addon member is exported by the addon',
  )
  t.same(
    exported.filter((n) => !declared.includes(n)),
    [],
    'every addon export is declared in the Addon interface',
  )
})

t.test('backendOps lists what each backend table holds', async (t) => {
  const cpu = addon.backendOps('cpu')
  t.same(
    ENCODER_TRAINING_OPS.filter((op) => !cpu.includes(op)),
    [],
    'the CPU table has every op the encoder uses (so the list names real ops)',
  )
  const cuda = addon.backendOps('cuda')
  t.ok(
    cuda.every((op) => cpu.includes(op)),
    'every CUDA op has its CPU reference',
  )
  const blocker = encoderCudaBlocker(true)
  t.equal(
    blocker === null,
    ENCODER_TRAINING_OPS.every((op) => cuda.includes(op)),
    'the encoder is blocked exactly when an op lacks a kernel',
  )
  t.throws(() => addon.backendOps('tpu' as never), /Expected device to be 'cpu' or 'cuda'/)
})
