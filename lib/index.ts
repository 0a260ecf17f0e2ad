// simcsepp: SimCSE++ sentence-embedding training on CUDA and CPU. Public entry point.
import { addon, type CudaStatus } from './native.js'
import type { TokenizeOptions } from './tokenizer.js'
import type { EmbedOptions } from './embed/sentence-encoder.js'

export { Tensor, type Device } from './tensor.js'
export { Bf16Values } from './bf16-values.js'
export * as losses from './losses.js'
export type { LossOutput, SimcseOptions, OffDropoutOptions, DclOptions, SimcsePlusPlusOptions, CosentOptions } from './losses.js'
export { dropout, dropoutBackward, type DropoutOptions, type RowPlacement } from './dropout.js'
export type { CudaStatus } from './native.js'

/** Whether the CUDA kernels are compiled in and a device can be used, and if not, why. */
export function cudaStatus(): CudaStatus {
  return addon.cudaStatus()
}

/** Threads the CPU backend uses (SIMCSEPP_NUM_THREADS, else the number of cores). */
export function numThreads(): number {
  return addon.numThreads()
}

export { BertModel, type BatchInput, type ModelOptions, type TrainForwardOptions, type Pooling } from './model/bert.js'
export { POOLINGS } from './model/pooling.js'
export { SIMILARITY_FNS, type SimilarityFn } from './embed/similarity-fn.js'
export { Tokenizer, type EncodedBatch, type TokenizeOptions } from './tokenizer.js'
export {
  AdamW,
  clipGradNorm,
  clipGradScale,
  linearSchedule,
  scheduledLr,
  LR_SCHEDULES,
  type AdamWOptions,
  type LrSchedule,
} from './optim/adamw.js'
export { namedConfig, parseHfConfig, toHfConfig, readHfConfig, type BertConfig, type NamedConfig } from './model/config.js'
export { readSafetensors, writeSafetensors, parseSafetensors } from './safetensors.js'
export {
  SentenceEncoder,
  type SentenceEncoderOptions,
  type EmbedOptions,
  type EncodeProgress,
  type EncoderDevice,
  type EncoderSearchOptions,
  type SearchCorpus,
} from './embed/sentence-encoder.js'
export { LangChainEmbeddings, type EmbeddingsLike } from './embed/langchain.js'
export { serveEmbeddings, type EmbeddingServer, type EmbeddingServerOptions } from './embed/server.js'
export {
  VectorIndex,
  searchVectors,
  cosineMatrix,
  type SearchOptions,
  type AsyncSearchOptions,
  type VectorIndexOptions,
  type IndexSimilarity,
  type SearchResult,
  type VectorsInput,
} from './embed/search.js'
export { BinaryIndex, type BinarySearchOptions, type AsyncBinarySearchOptions } from './embed/binary-index.js'
export {
  quantizeEmbeddings,
  quantizationRanges,
  type EmbeddingPrecision,
  type QuantizationRanges,
  type QuantizeOptions,
} from './embed/quantize.js'
export { train, type TrainOptions, type TrainHooks, type TrainResult, type StepInfo, type EvalInfo } from './train/train.js'
export { exportOnnx, type ExportOnnxOptions, type ExportOnnxResult } from './export/export-onnx.js'
export { resolveModel, type HubOptions } from './hub/hub-model.js'
export { pushToHub, type PushOptions, type PushResult } from './hub/hub-push.js'
export { OnnxEncoder, type OnnxEncoderOptions } from './embed/onnx-encoder.js'
export { evaluateSts, evaluateStsFiles, readStsFile, spearman, type StsPair } from './eval/sts.js'
export { mineHardNegatives, type MineOptions, type MinePair, type MinedTriplet, type MineResult } from './data/mine.js'
export { formatTriplets, formatTuples, tuplesOf, type MinedTuple, type TripletFormat } from './data/write-triplets.js'
export { readBeirDataset, type RetrievalDataset, type RetrievalDocument } from './eval/beir.js'
export {
  evaluateRetrieval,
  queryScores,
  RETRIEVAL_CUTOFFS,
  type RetrievalEvalOptions,
  type RetrievalResult,
  type RetrievalScores,
} from './eval/retrieval.js'
export { evaluateTranslation, readTranslationPairs, type TranslationPairs, type TranslationResult } from './eval/translation.js'
export { evaluateMse, readMseSentences, type MseResult, type MseSentences } from './eval/mse.js'
export { reduceDimensions, type ReduceOptions, type ReduceResult } from './embed/reduce-dimensions.js'
export {
  evaluateClassification,
  readClassificationSet,
  type ClassificationOptions,
  type ClassificationResult,
  type ClassificationSet,
} from './eval/classification.js'
export { evaluateClustering, readClusteringDataset, type ClusteringDataset, type ClusteringResult } from './eval/clustering.js'
export {
  evaluatePairClassification,
  readPairClassificationSet,
  type PairClassificationResult,
  type PairClassificationSet,
} from './eval/pair-classification.js'
export { evaluateReranking, readRerankingSet, type RerankingResult, type RerankingSet } from './eval/reranking.js'
export { evaluateSummarization, readSummarizationSet, type SummarizationResult, type SummarizationSet } from './eval/summarization.js'
export { fitLogisticRegression, predictClasses, type LogisticRegressionModel } from './eval/logistic-regression.js'

// Old names, kept so that code written against them still compiles.
/** @deprecated Renamed TokenizeOptions (the options of Tokenizer.encodeBatch). */
export type EncodeOptions = TokenizeOptions
/** @deprecated Renamed EmbedOptions (the options of SentenceEncoder.encode). */
export type SentenceEncodeOptions = EmbedOptions
