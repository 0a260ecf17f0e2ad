// The command line's help (issue 14): every command answers --help with its own usage, --version, the
// top-level usage lists every option each command parses, and an unknown option names the closest one.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cli, needsCli } from './helpers/train-corpus.js'
import { didYouMean } from '../lib/cli/args.js'

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })

/** The flags each command's source parses (the option tables handed to parseFlags). */
function parsedFlags(file: string): string[] {
  const src = readFileSync(`lib/cli/${file}`, 'utf8')
  return [...src.matchAll(/^\s+'?([a-z][a-z-]*)'?: \{ type: '(?:string|boolean)'/gm)].map((m) => m[1]).filter((f) => f !== 'help')
}

t.test('every command answers --help with its own usage on stdout, exit 0', needsCli, async (t) => {
  for (const [command, first] of [
    ['train', 'simcsepp train [options]'],
    ['eval', 'simcsepp eval --model DIR (--sts FILE... | --retrieval DIR... | the tasks below) [options]'],
    ['encode', 'simcsepp encode --model DIR'],
    ['search', 'simcsepp search --model DIR --corpus FILE'],
    ['mine', 'simcsepp mine --model DIR --data PAIRS --out FILE'],
    ['push', 'simcsepp push --model DIR --repo ORG/NAME'],
    ['bench', 'simcsepp bench losses|gemm|encode|step|batch'],
    ['info', 'simcsepp info'],
  ]) {
    for (const flag of ['--help', '-h']) {
      const r = run(command, flag)
      t.equal(r.status, 0, `${command} ${flag} exits 0 ${r.stderr}`)
      t.ok(r.stdout.startsWith(first), `${command} ${flag}: its own usage`)
      t.equal(r.stderr, '')
    }
  }
  const step = run('bench', 'step', '--help')
  t.equal(step.status, 0)
  t.match(step.stdout, /bench step \[--model base\|DIR\]/)
})

t.test('--version prints the package version', needsCli, async (t) => {
  const { version } = JSON.parse(readFileSync('package.json', 'utf8'))
  const r = run('--version')
  t.equal(r.status, 0)
  t.equal(r.stdout, `simcsepp ${version}\n`)
})

t.test("the top-level usage and each command's usage list every option it parses", needsCli, async (t) => {
  const top = run('--help').stdout
  for (const [command, file] of [
    ['train', 'train-command.ts'],
    ['eval', 'eval-command.ts'],
    ['eval', 'encode-command.ts'],
    ['encode', 'encode-command.ts'],
    ['bench', 'bench-command.ts'],
    ['mine', 'mine-command.ts'],
    ['search', 'search-command.ts'],
    ['push', 'push-command.ts'],
  ]) {
    const own = run(command, '--help').stdout
    const flags = parsedFlags(file)
    t.ok(flags.length >= 5, `${file}: ${flags.length} flags found`)
    for (const flag of flags) {
      // encode-command.ts holds the encoder flags eval shares (encoderFlags) and encode's own.
      if (
        file === 'encode-command.ts' &&
        command === 'eval' &&
        ['file', 'column', 'format', 'prompt', 'prompt-name', 'quantize', 'calibration'].includes(flag)
      )
        continue
      if (command === 'encode' && flag === 'format') t.match(own, '--format json|jsonl|tsv|f32|bytes')
      t.ok(own.includes(`--${flag}`), `${command} --help lists --${flag}`)
      t.ok(top.includes(`--${flag}`), `the top-level usage lists --${flag}`)
    }
  }
})

t.test('an unknown option names the closest known one; the usage is the command’s', needsCli, async (t) => {
  const r = run('train', '--learning-rate', '1e-3')
  t.equal(r.status, 2)
  t.match(r.stderr, /^simcsepp: unknown option --learning-rate\n\nsimcsepp train \[options\]/)
  const typo = run('train', '--bach-size', '8')
  t.match(typo.stderr, /^simcsepp: unknown option --bach-size \(did you mean --batch-size\?\)/)
  const e = run('eval', '--modle', 'x')
  t.equal(e.status, 2)
  t.match(e.stderr, /^simcsepp: unknown option --modle \(did you mean --model\?\)\n\nsimcsepp eval/)
  t.match(run('trian').stderr, /unknown command 'trian' \(did you mean train\?\)/)
  t.equal(didYouMean('--max-length', ['max-len', 'model']), ' (did you mean --max-len?)', 'a longer spelling of a flag')
  t.equal(didYouMean('--lr=3', ['lr', 'seed']), ' (did you mean --lr?)')
  t.equal(didYouMean('--colour', ['pooling', 'device']), '', 'nothing close: no guess')
})

t.test("training's progress lines show SimCSE++'s two loss parts beside the total", needsCli, async (t) => {
  const { tempDir, tinyTrainArgs, writeSentences } = await import('./helpers/train-corpus.js')
  const dir = tempDir('simcsepp-progress-')
  const data = writeSentences(`${dir}/data.txt`, 40)
  const r = run(...tinyTrainArgs(data, `${dir}/out`, 4))
  t.equal(r.status, 0, r.stderr)
  const line = r.stderr.split('\n').find((l) => l.includes('4/4 steps'))!
  t.match(line, /loss \d[\d.]*\s+offDropout \d[\d.]*\s+dcl \d[\d.]*\s+lr /, line)
})
