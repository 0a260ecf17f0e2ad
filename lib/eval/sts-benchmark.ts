// The seven English STS test sets that SentEval, SimCSE and the papers after it average (STS12-16, STS Benchmark,
// SICK-R), as MTEB keeps them on the Hugging Face Hub: one gzipped JSON Lines file per test split, with sentence1,
// sentence2 and score. STS12-16 hold every subset's pairs concatenated, so one Spearman over them is SimCSE's "all"
// setting; MTEB's SICK-R holds all 9,927 SICK pairs, where SentEval scores the 4,927 of its test split, so that number
// is MTEB's (as MTEB's model cards report it), not the SimCSE paper's.
export const STS_BENCHMARK = [
  { task: 'STS12', id: 'mteb/sts12-sts' },
  { task: 'STS13', id: 'mteb/sts13-sts' },
  { task: 'STS14', id: 'mteb/sts14-sts' },
  { task: 'STS15', id: 'mteb/sts15-sts' },
  { task: 'STS16', id: 'mteb/sts16-sts' },
  { task: 'STSBenchmark', id: 'mteb/stsbenchmark-sts' },
  { task: 'SICK-R', id: 'mteb/sickr-sts' },
] as const

/** The split the benchmark scores, and the file it is in. */
export const STS_BENCHMARK_SPLIT = 'test'
export const stsBenchmarkRef = (id: string) => `hf://datasets/${id}/${STS_BENCHMARK_SPLIT}.jsonl.gz`
