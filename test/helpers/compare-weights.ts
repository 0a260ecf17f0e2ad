// The weights of two training runs (their model.safetensors) compared as the micro-batch tests need.
import { join } from 'node:path'
import { readSafetensors } from '../../lib/safetensors.js'

/**
 * Largest relative difference over the tensors (max |a - b| over max |b|, floored at 0.02, BERT's
 * initialisation scale: zero-initialised biases have moved only ~steps·lr, and relative to that their
 * float noise would look large), and the worst attention key bias difference (absolute).
 */
export async function compareWeights(a: string, b: string) {
  const ta = await readSafetensors(join(a, 'model.safetensors')),
    tb = await readSafetensors(join(b, 'model.safetensors'))
  let worst = 0,
    keyBias = 0,
    worstName = ''
  for (const [name, y] of tb) {
    const x = ta.get(name)!
    let num = 0,
      den = 0
    for (let i = 0; i < y.data.length; i++) {
      num = Math.max(num, Math.abs(x.data[i] - y.data[i]))
      den = Math.max(den, Math.abs(y.data[i]))
    }
    // The key bias's exact gradient is 0 (softmax is shift-invariant): AdamW turns rounding noise into
    // updates of up to lr there, so it is held to an absolute bound instead.
    if (/attention\.self\.key\.bias$/.test(name)) keyBias = Math.max(keyBias, num)
    else if (num / Math.max(den, 0.02) > worst) {
      worst = num / Math.max(den, 0.02)
      worstName = `${name} (max |w| ${den.toExponential(2)})`
    }
  }
  return { worst, keyBias, worstName }
}
