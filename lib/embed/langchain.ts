// A LangChain.js `Embeddings`-shaped view of a SentenceEncoder: LangChain's vector stores and retrievers
// take any object with embedDocuments/embedQuery (@langchain/core's EmbeddingsInterface), so this needs
// no LangChain import and LangChain stays out of the dependencies.
import type { SentenceEncoder } from './sentence-encoder.js'

/** The methods of @langchain/core's EmbeddingsInterface (embeddings.d.ts), which vector stores accept. */
export interface EmbeddingsLike {
  embedDocuments(documents: string[]): Promise<number[][]>
  embedQuery(document: string): Promise<number[]>
}

export class LangChainEmbeddings implements EmbeddingsLike {
  constructor(
    /** The encoder that embeds; closing it is the caller's business. */
    readonly encoder: SentenceEncoder,
    private readonly options: { batchSize?: number } = {},
  ) {}

  /**
   * One vector per text, in order, as plain number arrays (what LangChain's stores expect); with the model's
   * document prompt, if any (encodeDocument).
   */
  async embedDocuments(documents: string[]): Promise<number[][]> {
    return (await this.encoder.encodeDocument(documents, this.options)).map((v) => Array.from(v))
  }

  /** With the model's query prompt, if any (encodeQuery). */
  async embedQuery(document: string): Promise<number[]> {
    return Array.from(await this.encoder.encodeQuery(document, this.options))
  }
}
