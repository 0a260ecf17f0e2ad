// A model card's YAML front matter as a YAML reader reads it: Python's PyYAML (what the Hub's own tooling,
// huggingface_hub's ModelCard, parses metadata with), where this machine has it.
import { spawnSync } from 'node:child_process'

/** The front matter of `card` (between its first two '---' lines) as PyYAML loads it, or null where PyYAML is missing. */
export function frontMatterOf(card: string): unknown {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(card)
  if (!m) throw new Error('the card has no front matter')
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.stdin.read())))'], {
    input: m[1],
    encoding: 'utf8',
  })
  if (r.status !== 0) {
    if (/No module named 'yaml'|ENOENT/.test(r.stderr ?? '') || r.error) return null
    throw new Error(`PyYAML could not read the front matter: ${r.stderr}`)
  }
  return JSON.parse(r.stdout)
}

/** tap's skip option for tests that need PyYAML. */
export const needsPyYaml = {
  skip: spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0 ? false : 'python3 with PyYAML not found',
}
