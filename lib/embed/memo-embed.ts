// An embed function that remembers each text's vector, and the same vectors cut to their first `dim` values: scoring
// a Matryoshka model at several sizes (training's evaluation, `simcsepp eval --matryoshka-dims`) encodes each text
// once. The cut vectors are views of the remembered ones (cosine similarity does not need them normalised).
export type Embed = (texts: string[]) => Promise<Float32Array[]>

export interface MemoEmbed {
  /** `embed`, each distinct text encoded at most once over the memo's life. */
  full: Embed
  /** The first `dim` values of full's vectors (an Error when the vectors are shorter). */
  cut(dim: number): Embed
}

export function memoEmbed(embed: Embed): MemoEmbed {
  const seen = new Map<string, Float32Array>()
  const full: Embed = async (texts) => {
    const missing = [...new Set(texts.filter((x) => !seen.has(x)))]
    if (missing.length) {
      const vectors = await embed(missing)
      if (vectors.length !== missing.length) throw new Error(`embed returned ${vectors.length} vectors for ${missing.length} texts`)
      vectors.forEach((v, i) => seen.set(missing[i], v))
    }
    return texts.map((x) => seen.get(x)!)
  }
  const cut = (dim: number): Embed => {
    return async (texts) =>
      (await full(texts)).map((v) => {
        if (dim > v.length) throw new RangeError(`dimension ${dim} is more than the model's ${v.length}`)
        return v.subarray(0, dim)
      })
  }
  return { full, cut }
}
