// The usage of each command (its own --help) and the top-level usage built from all of them, so that
// `simcsepp --help` lists every option each command takes, and no list drifts from another.
import { readFileSync } from 'node:fs'
import { trainUsage } from './train-command.js'

const encoderOptions = `  Encoder     --pooling cls|mean|max|mean_sqrt_len  --normalize  --max-len N  --batch-size N  (pooling,
              normalize and max-len default to the model's sentence-transformers settings: max_seq_length,
              else 128)
              --device auto|cpu|cuda  --precision auto|fp32|bf16|int8 (auto: bf16 products on CUDA, fp32 on the
              CPU; int8: the CPU's int8 products, fastest with AVX-512 VNNI, vectors near fp32's)
              --truncate-dim N (a Matryoshka model's first N dimensions, normalised after the cut with
              --normalize; default: config_sentence_transformers.json's truncate_dim)
              --similarity-fn cosine|dot|euclidean|manhattan (dot: search and eval --retrieval rank by the
              dot product; default: config_sentence_transformers.json's similarity_fn_name, else cosine)
`

export const evalUsage = `simcsepp eval --model DIR (--sts FILE... | --retrieval DIR... | the tasks below) [options]
  STS Spearman and Pearson (cosine of sentence vectors vs gold scores) for STS-B, SICK or STS12-16 files
  (or a Hugging Face STS split in Parquet: sentence1, sentence2, score; or those columns in CSV, TSV or
  JSONL, also gzipped); an STS12-16 folder: the "all" setting (subsets concatenated), each subset and their
  mean. Retrieval (exact cosine search, scored as BEIR and MTEB score it): nDCG@10, MAP@10, MRR@10,
  Recall@10 and @100.
  Input       --model DIR  --sts FILE (repeatable, or as arguments; UTF-8, lines ending in \\n or \\r\\n)
              --sts-benchmark: the seven English STS test sets papers average (STS12-16, STSBenchmark,
              SICK-R), MTEB's copies on the Hub (mteb/sts12-sts, ...: downloaded into the Hugging Face cache
              once), each named by its task; MTEB's SICK-R is all of SICK's pairs, not SentEval's test split
              --retrieval DIR (repeatable): a BEIR folder, corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv
              --translation FILE (repeatable): parallel pairs (english,non_english or anchor,positive; CSV,
              TSV, JSONL, Parquet): how often each sentence's nearest neighbour among the other side is its
              translation, both ways (sentence-transformers' TranslationEvaluator); and MTEB's bitext mining
              F1 of the source-to-target matches (sentence1, sentence2 files read alike); a folder: its
              --split, or a folder per language pair (MTEB's Tatoeba, BUCC): each scored, and their mean
              --mse FILE (repeatable) --teacher DIR: a distilled student against its teacher (sentence-
              transformers' MSEEvaluator): the mean squared difference between the teacher's vectors of the
              first column of parallel pairs and the model's of the second (a text file: each line by both),
              x100, and its negative_mse (-100 x MSE)
  MTEB tasks  (repeatable: a file, or a folder of splits, SPLIT.jsonl[.gz], .csv, .tsv, .parquet, data/...;
              a folder of subset folders, a language each as MTEB's multilingual datasets keep them: each
              subset scored, and a table of each dataset's mean over its subsets)
              --classification PATH: text, label; a logistic regression fitted to the train split's vectors
              scores the --split's labels (accuracy, macro and weighted F1), as MTEB: --experiments 10 draws of
              --samples-per-label 32 rows of each label (0: all, one fit); one file: 10-fold cross-validation
              (SentEval's transfer tasks), all the other folds' rows unless --samples-per-label is given
              --clustering PATH: sentences, labels (a list each per row: one set per row; or one text per row):
              k-means with a cluster per label, the V-measure (mean over the sets)
              --pair-classification PATH: sentence1, sentence2, label(s) 0/1: by cosine, dot, Euclidean and
              Manhattan, the best accuracy and F1 over thresholds and the AP (the best AP: MTEB's score)
              --reranking PATH: query, positive (list), negative (list): candidates ranked by cosine to the
              query (with the query and document prefixes): MAP and MRR@10
              --summarization PATH: machine_summaries, human_summaries, relevance (lists per text): each
              machine summary scored by its best cosine (and dot) to the human ones; per text the Spearman
              and Pearson with relevance, averaged (cosine Spearman: MTEB's score)
              (the others' texts, STS's and translation's take the model's prompt named Classification,
              Clustering, PairClassification, Summarization, STS or BitextMining where it has one, else its
              default prompt)
              --split test (of retrieval and task folders)  --query-prefix STR --doc-prefix STR (prepended;
              default: the model's "query" and "document" or "passage" prompts in
              config_sentence_transformers.json, e5's "query: ", ...)
              --onnx FILE instead of --model: a file simcsepp export wrote (DIR-onnx/onnx/model_quantized.onnx),
              run by onnxruntime-node where installed; its graph pools as exported; --max-len, --batch-size apply
  Output      --json (one JSON object: per STS file and the average; with --retrieval, a "retrieval" array
              of { dataset, split, queries, documents, ndcgAt10, scores: { ndcg, map, recall, precision,
              mrr } at 1, 3, 5, 10, 100 }; with --translation, a "translation" array of { file, pairs,
              sourceToTarget, targetToSource, accuracy, f1, precision }; with --mse, "mse": [{ file,
              sentences, mse }]; "classification", "clustering", "pairClassification", "reranking" and
              "summarization" arrays likewise, scores as fractions;
              with two datasets or more, "mean": { datasets, mean, taskTypes, meanByTaskType }: MTEB's Mean
              (Task) and Mean (TaskType) of their main scores, also the last table and Matryoshka's last columns)
              --update-card: the scores also into the model folder's README.md as model-index metadata (the
              Hub's evaluation results, in sentence-transformers' terms), merged with the card's: a set scored
              again replaces its result (same task, dataset, split, config); a Hub dataset (hf://datasets/ID/...)
              typed by its ID; a --matryoshka-dims size below the model's as "NAME (256 dims)"; the card's
              other metadata and its text unchanged (no README.md: one is made)
  Matryoshka  --matryoshka-dims 768,256,64: every measure with the vectors cut to each size (encoded once);
              a table of a row per size (--json: { matryoshka: [{ dim, ... }] })
  Binary      --binary: each retrieval set ranked four ways: exact, by the Hamming distance of the vectors'
              signs, rescored (--rescore N, 4: the N × 100 nearest by signs reranked by the float query against
              their signs), and rescored by the documents' full vectors, as a binary vector store would rank them
              (search: "exact", "binary", "binary, rescore N", "binary, rescore N by vectors")
${encoderOptions}`

export const encodeUsage = `simcsepp encode --model DIR [--file FILE] [sentences...] [options]
  One vector per sentence, in input order: arguments first, then the file's lines.
  Input       --model DIR  --file FILE (one sentence per line, UTF-8; a blank line is an error naming it, so
              that output line N is input line N), or a Parquet file or JSON Lines: --column NAME (default:
              the only column or field, or text/sentence/document/passage/content), a row per sentence, an
              empty one an error
              sentences as arguments ('' embeds as [CLS] [SEP])
  Prompt      --prompt-name NAME (one of the model's prompts, config_sentence_transformers.json: e5's and bge's
              "query", ...; default: its default_prompt_name)  --prompt STR (prepended to every sentence)
  Output      --format json|jsonl|tsv|f32|bytes (json): json: a JSON array per line; jsonl: {"sentence", "embedding"}
              per line; tsv: the sentence (\\, tab, newline, CR escaped as \\\\ \\t \\n \\r), then one column per
              dimension, no header; values at float32 precision (shortest decimals that read back
              exactly); f32: raw little-endian float32, dimension × sentences. A --file of 1000 lines or
              more shows a progress bar on stderr when stderr is a terminal
  Quantize    --quantize int8|uint8|binary|ubinary: sentence-transformers' quantize_embeddings (integers in the
              text formats; --format bytes: the raw bytes, row after row); ubinary: each dimension's sign as a
              bit, 8 to a byte (binary: those bytes - 128); int8/uint8: 256 buckets per dimension between the
              ranges of --calibration FILE's vectors (sentences, read as --file; use the same file for every
              input whose vectors are compared)
${encoderOptions}`

export const searchUsage = `simcsepp search --model DIR --corpus FILE [--top-k 5] [--binary] [--json] "query"... [options]
  The corpus sentences nearest each query by cosine similarity, best first: score, [index] and sentence.
  Input       --model DIR  --corpus FILE (one sentence per line, UTF-8; blank lines skipped, [index] counts
              the others from 0; or a Parquet or JSON Lines file's --column NAME, as encode reads it, empty
              rows skipped)
              queries as arguments
              --vectors FILE: the corpus's vectors as encode wrote them (--format f32; with --binary also
              --quantize ubinary --format bytes), a row per sentence, read instead of encoding the corpus
  Output      --top-k N (5)  --json (an array: per query its hits, { index, score, sentence })
  Binary      --binary: the corpus held as its vectors' signs (1 bit per dimension, 1/32 of float32), searched by
              Hamming distance, then the --rescore N (4) × top-k nearest reranked by the cosine of the float query
              with their signs (--rescore 0: Hamming order, scored 1 - 2 × distance / dimensions)
${encoderOptions}`

export const serveUsage = `simcsepp serve --model DIR [--port 8080] [--host 127.0.0.1] [options]
  The model over HTTP until SIGINT or SIGTERM (requests in progress finish first), as two APIs:
  OpenAI      POST /v1/embeddings {"input": str | [str], "model", "encoding_format": float|base64, "dimensions"}
              (unit vectors; dimensions: the first N values, normalised again), GET /v1/models
  TEI         POST /embed {"inputs": str | [str], "normalize": true, "prompt_name"}, GET /info, GET /health
              (Hugging Face text-embeddings-inference's API)
  Server      --host 127.0.0.1 (0.0.0.0: every interface)  --port 8080 (0: any free port)  --name NAME (the
              model in responses; default the directory's name)  --max-inputs 2048 (per request)
              --max-batch 512 (sentences per encoder call: requests that arrive while it is busy are encoded
              together)  --max-queue 16384 (sentences waiting; beyond, a request gets a 429: retry later)
              --cors ORIGIN (web pages of ORIGIN, or * for any, may call it from a browser)
              Prompts: the model's default one unless "prompt_name" names another
              SIMCSEPP_API_KEY=KEY in the environment: every request but /health needs Authorization: Bearer KEY
${encoderOptions.replace('--normalize  ', '')}`

export const mineUsage = `simcsepp mine --model DIR --data PAIRS --out FILE [options]
  Hard negatives for supervised training: for each (anchor, positive) pair, corpus sentences the model finds
  close to the anchor (its own text and its positives left out), written as triplets (sent0,sent1,hard_neg)
  that \`simcsepp train --data\` reads. As sentence-transformers' mine_hard_negatives.
  Input       --model DIR  --data FILE (pairs: CSV/TSV with sent0,sent1 or anchor,positive, JSONL or Parquet)
              --corpus FILE (one sentence per line; default: the pairs' distinct positives)
  Output      --out FILE (.csv, .tsv or .jsonl; an existing file only with --overwrite)
              --output-format triplet|n-tuple (triplet: a row per negative; n-tuple: a row per pair with its
              --num-negatives negatives as negative_1..negative_k, pairs with fewer left out)
  Mining      --num-negatives 3  --range-min 0 (closest ranks skipped)  --range-max N (candidates per anchor)
              --margin X (negative <= positive - X)  --relative-margin X (negative <= positive * (1 - X))
              --max-score X  --sampling top|random  --seed 42  --query-prefix STR --doc-prefix STR (default:
              the model's "query" and "document" prompts, as sentence-transformers' encode_query/encode_document)
${encoderOptions}`

export const exportUsage = `simcsepp export --format onnx --model DIR [--out DIR] [options]
  The encoder as an ONNX graph (opset 17, dynamic batch and sequence length) in a folder that
  transformers.js loads as a local model: config.json, tokenizer files, onnx/model.onnx.
  Input       --format onnx  --model DIR
  Output      --out DIR (default: DIR-onnx beside the model; a folder holding files is refused unless
              --overwrite)  --weights fp32|fp16|q8 or a list (fp32; fp16: onnx/model_fp16.onnx, half the size,
              fp32 math; q8: onnx/model_quantized.onnx, int8 weights and integer products, a quarter the size)
  Graph       outputs last_hidden_state and sentence_embedding: --pooling cls|mean|max|mean_sqrt_len
              --normalize  --max-len N (tokenizer_config's model_max_length), defaulting to the model's
              sentence-transformers settings
`

export const reduceUsage = `simcsepp reduce --model DIR --dim N --data FILE [--out DIR] [options]
  The model's vectors made shorter without training (sentence-transformers' dimensionality_reduction): the first
  N principal components of its vectors of --sentences 20000 sentences of --data (evenly spread over it; text,
  JSONL or Parquet, --column C) as a bias-free Dense module after its pooling (before its Normalize, if any), in
  a copy of the model that SentenceTransformer and SentenceEncoder load. Says the variance the components hold.
  Output      --out DIR (default: DIR-Nd beside the model; a folder holding files is refused unless --overwrite);
              the copy's README.md a card of its own (the model's results are not the new model's); no onnx/
  Encoder     --device auto|cpu|cuda  --batch-size N (the vectors the components are fitted to, in fp32)
`

export const pushUsage = `simcsepp push --model DIR --repo ORG/NAME [--revision main] [--private] [--message TEXT]
  The model in DIR (a model folder, or a training run's --out without its run/ state and hidden files) pushed to
  the Hugging Face Hub as one commit, creating the repository if needed (--private: created private). Large files
  go to the Hub's LFS storage, each once. Needs a token with write access: HF_TOKEN, or huggingface-cli login's.
  Files of the repository that DIR lacks are kept. --revision BRANCH: a branch other than main is created from
  main's head where it does not exist (refs/pr/N: an open pull request's branch). Then:
  SentenceEncoder.load('ORG/NAME'), or Python's SentenceTransformer('ORG/NAME').
`

export const benchUsage = `simcsepp bench losses|gemm|encode|step|batch|dist|search|attention [options]
  bench losses [--sizes 64,512,4096,65536] [--dim 768] [--device auto|cpu|cuda|all] [--seconds 3] [--json]
      Fused off-dropout InfoNCE (forward + backward) against an unfused path of separate ops.
  bench gemm [--sizes 2048,6144 | --model tiny|mini|small|base] [--bf16] [--seconds 2] [--json]
      CPU SGEMM GFLOP/s at BERT-base shapes (M from --sizes) or at the products of one training step of
      --model, next to the system BLAS when one is installed (OPENBLAS_CORETYPE unset for it); --bf16 adds
      our bf16 products (--precision bf16: AMX tiles or VDPBF16PS where the CPU runs them fast) and their
      speed over fp32.
  bench encode [--models mini,base] [--sentences 256] [--batch-size 32] [--device auto|cpu|cuda]
               [--no-onnxruntime] [--bf16] [--int8] [--q8] [--json]
      SentenceEncoder sentences/s, length-sorted batching against input-order batching; on the CPU, next to
      onnxruntime-node (where installed) on the same model exported to ONNX, same batches and threads;
      --bf16 (CPU) adds precision 'bf16': its sentences/s and its vectors' largest 1 - cos from fp32's;
      --int8 (CPU) adds precision 'int8' (SentenceEncoder's int8 products), the same two;
      --q8 (CPU) adds onnxruntime on the export with int8 weights (export --weights q8), the same two.
  bench step [--model base|DIR] [--batch-sizes 64,512] [--seq-len 32] [--steps 5] [--device auto|cpu|cuda|all]
             [--precision auto|fp32|bf16] [--micro-batch M] [--profile [--plot FILE.svg]] [--products]
             [--json]
      One SimCSE++ training step: steps/s, sentences/s, model TFLOP/s and utilisation, memory; --model: tiny,
      mini, small, base, or a model folder (its config.json's architecture, random-initialised);
      --profile: milliseconds per op category (on CUDA: device time from events, steps without graphs,
      then per kernel and product of each category, with the products' TFLOP/s);
      --products (CPU): the step's matrix products timed alone, and their share of the step.
  bench batch [--model tiny|DIR] [--batch-sizes 64,256,1024,4096] [--micro-batch 128] [--seq-len 32] [--steps 1]
              [--device cpu] [--plot FILE.svg] [--json]
      The step whole and in micro-batches per batch size (one process each): sentences/s, peak memory.
  bench dist [--ranks 2] [--model tiny] [--batch-size 64] [--seq-len 32] [--steps 5] [--device cpu] [--json]
      Data-parallel step on R ranks (mpirun) against one process: step time split into compute and
      communication, bytes handed to the collectives per step, sentences/s (--worker FILE: internal, how the
      benchmark runs each rank under mpirun).
  bench attention [--batch 192] [--seq-lens 32,128] [--heads 12] [--head-size 64] [--device auto|cpu|cuda|all]
                  [--seconds 1] [--json]
      The attention op, forward + backward with a padding mask and dropout, on every path of each device (CPU
      fp32 and bf16; CUDA tiled, fused fp32, tensor cores at bf16), with the probabilities kept for the
      backward and formed again there: ms, TFLOP/s of its products, speed against the device's first path.
  bench search [--corpus 100000] [--dim 768] [--queries 16] [--top-k 10] [--rescore 4] [--repeats 15] [--json]
      Exact float32 cosine search against binary search (the signs by Hamming distance, then rescored
      --rescore x top-k), alternated in one run over random vectors: ms per batch, speed, index size.
`

export const infoUsage = `simcsepp info
  Build and device information (CPU threads, CUDA device and memory), as JSON.
`

/** Each command's usage, by name. */
export const COMMAND_USAGE: Record<string, string> = {
  train: trainUsage,
  eval: evalUsage,
  encode: encodeUsage,
  search: searchUsage,
  serve: serveUsage,
  mine: mineUsage,
  export: exportUsage,
  reduce: reduceUsage,
  push: pushUsage,
  bench: benchUsage,
  info: infoUsage,
}

export const usage = `simcsepp: SimCSE++ sentence-embedding training on CUDA and CPU

Usage: simcsepp COMMAND [options]   (simcsepp COMMAND --help: that command's usage; simcsepp --version)
A --model or --teacher that is no folder here is a Hugging Face Hub id (org/name[@revision]): the model is
downloaded into huggingface_hub's cache once (HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_ENDPOINT; HF_HUB_OFFLINE=1: the
cache only). Data files (--data, --eval-file, --eval-retrieval, --sts, --retrieval, --translation, --file, --corpus)
may be a Hub dataset's, hf://datasets/org/name[@revision]/PATH (a file, a folder, or a pattern: train-*.parquet).

${Object.values(COMMAND_USAGE).join('\n')}`

/** The package's version, from its package.json (one directory above dist/ and lib/). */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}
