// `simcsepp push`: a thin layer over pushToHub (lib/hub/hub-push.ts), with a progress bar per LFS file of a megabyte
// or more on stderr.
import { pushToHub } from '../hub/hub-push.js'
import { parseFlags, UsageError } from './args.js'
import { pushUsage } from './help.js'
import { fileProgressBars } from './hub-download.js'

/** simcsepp push --model DIR --repo ORG/NAME [--revision main] [--private] [--message TEXT] */
export async function pushCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(pushUsage, {
    args: argv,
    options: {
      model: { type: 'string' },
      repo: { type: 'string' },
      revision: { type: 'string' },
      private: { type: 'boolean', default: false },
      message: { type: 'string' },
    },
  })
  if (!values.model) throw new UsageError("push: --model DIR is required (a model folder, or a training run's --out)")
  if (!values.repo) throw new UsageError('push: --repo ORG/NAME is required (the Hub repository to push to)')
  const bars = fileProgressBars()
  const r = await pushToHub(values.model, values.repo, {
    revision: values.revision,
    private: values.private,
    message: values.message,
    onProgress: bars.onProgress,
  })
  bars.finish()
  const total = r.files.reduce((s, f) => s + f.size, 0)
  const lfs = r.files.filter((f) => f.lfs).length
  process.stdout.write(
    `pushed ${r.files.length} files (${(total / 1e6).toFixed(1)} MB; ${lfs} as LFS objects, ` +
      `${(r.uploadedBytes / 1e6).toFixed(1)} MB of them uploaded) to ${r.repoId}: commit ${r.commit}\n  ${r.url}\n`,
  )
}
