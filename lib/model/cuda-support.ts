// Whether the encoder can run on CUDA in this build: every op a forward pass (and, for training, the
// backward pass and the optimizer step) uses must have an entry in the CUDA backend's table. The
// addon answers from the table itself (backendOps), so nothing is allocated or run to find out. The
// answer feeds the device policy (lib/device.ts): the encoder runs on CUDA once all its ops have kernels.
import { addon } from '../native.js'

/** The native ops of an eval-mode forward pass (embedding, layers, pooling, MLP head). */
export const ENCODER_FORWARD_OPS = [
  'embedding_forward',
  'layernorm_forward',
  'linear_forward',
  'attention_forward',
  'relative_bias_forward',
  'gelu_forward',
  'geglu_forward',
  'rope',
  'tanh_forward',
  'add_inplace',
  'pool_cls_forward',
  'pool_mean_forward',
  'pool_max_forward',
  'dropout',
] as const

/** What a training step adds: every backward, the losses, grad-norm clipping and AdamW. */
export const ENCODER_TRAINING_OPS = [
  ...ENCODER_FORWARD_OPS,
  'embedding_backward',
  'layernorm_backward',
  'linear_backward',
  'attention_backward',
  'relative_bias_backward',
  'gelu_backward',
  'geglu_backward',
  'tanh_backward',
  'pool_cls_backward',
  'pool_mean_backward',
  'pool_max_backward',
  'simcse',
  'offDropout',
  'dcl',
  'grad_sum_squares',
  'scale_inplace',
  'adamw_step',
  // Matryoshka training's truncated vectors (lib/train/matryoshka.ts).
  'leading_columns',
  'add_leading_columns',
] as const

/** null when the encoder's ops (its training ops, with `training`) all have CUDA kernels, else which lack them. */
export function encoderCudaBlocker(training = false): string | null {
  const have = new Set(addon.backendOps('cuda'))
  const missing = (training ? ENCODER_TRAINING_OPS : ENCODER_FORWARD_OPS).filter((op) => !have.has(op))
  return missing.length ? `no CUDA kernels yet for ${missing.join(', ')}` : null
}
