// Whether the encoder's ops run on CUDA in this build: a one-layer model of hidden size 8 runs one
// forward pass on the device (for training: also backward, grad clipping and an AdamW step), once per
// process. The answer feeds the device policy (lib/device.ts): the encoder runs on CUDA only once
// every op it uses has kernels there.
import { AdamW, clipGradNorm } from '../optim/adamw.js'
import { BertModel } from './bert.js'
import type { BertConfig } from './config.js'

const TINY: BertConfig = {
  modelType: 'bert',
  vocabSize: 8,
  hiddenSize: 8,
  numHiddenLayers: 1,
  numAttentionHeads: 2,
  intermediateSize: 16,
  hiddenAct: 'gelu',
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
  maxPositionEmbeddings: 8,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  padTokenId: 0,
  initializerRange: 0.02,
}

const answers = new Map<boolean, string | null>()

/** null when the encoder runs on CUDA (training it too, when `training`), else the error it gets. */
export function encoderCudaBlocker(training = false): string | null {
  if (!answers.has(training)) answers.set(training, probe(training))
  return answers.get(training)!
}

function probe(training: boolean): string | null {
  let model: BertModel | null = null,
    opt: AdamW | null = null
  try {
    model = BertModel.create(TINY, { device: 'cuda', mlp: training })
    const batch = { inputIds: Int32Array.of(2, 5, 3, 0), attentionMask: Int32Array.of(1, 1, 1, 0), shape: [2, 2] }
    if (!training) model.embed(batch, 'cls').dispose()
    else {
      model.trainBackward(model.trainForward(batch, { seed: 0, step: 0 }))
      clipGradNorm(model.grads, 1)
      opt = new AdamW(model.params, model.grads, model.layout.decayEnd)
      opt.stepWith(1e-3)
    }
    return null
  } catch (e) {
    return (e as Error).message ?? String(e)
  } finally {
    opt?.dispose()
    model?.dispose()
  }
}
