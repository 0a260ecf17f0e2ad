// A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) written for a test, in a fresh temporary directory.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Writes a BEIR folder: corpus and queries as JSONL lines, qrels lines as given. */
export function writeBeir(files: { corpus: unknown[] | string; queries: unknown[] | string; qrels: string; split?: string }): string {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-beir-'))
  const jsonl = (v: unknown[] | string) => (typeof v === 'string' ? v : v.map((x) => JSON.stringify(x)).join('\n') + '\n')
  writeFileSync(join(dir, 'corpus.jsonl'), jsonl(files.corpus))
  writeFileSync(join(dir, 'queries.jsonl'), jsonl(files.queries))
  mkdirSync(join(dir, 'qrels'))
  writeFileSync(join(dir, 'qrels', `${files.split ?? 'test'}.tsv`), files.qrels)
  return dir
}
