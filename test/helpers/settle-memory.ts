// Tensor storage held now, once every unreachable tensor has been collected: a full GC (exposed at run time,
// as tests run without --expose-gc), then a few turns of the event loop for the native finalizers that free
// the storage. For tests that check that something frees what it held: other tests' garbage, collected at
// some later point, would otherwise shift the count.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { addon } from '../../lib/native.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

export async function settledTensorBytes(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return addon.tensorMemory().heldBytes
}
