#!/usr/bin/env node
// The simcsepp command line: a thin layer over the library.
import { cudaStatus, numThreads } from './index.js'
import { trainCommand } from './cli/train-command.js'
import { encodeCommand } from './cli/encode-command.js'
import { evalCommand } from './cli/eval-command.js'
import { searchCommand } from './cli/search-command.js'
import { serveCommand } from './cli/serve-command.js'
import { mineCommand } from './cli/mine-command.js'
import { benchCommand } from './cli/bench-command.js'
import { exportCommand } from './cli/export-command.js'
import { pushCommand } from './cli/push-command.js'
import { reduceCommand } from './cli/reduce-command.js'
import { didYouMean, HelpRequest, parseFlags, UsageError } from './cli/args.js'
import { COMMAND_USAGE, infoUsage, usage, version } from './cli/help.js'

/** A usage error: the message, then the usage of the command it concerns (else the whole usage). */
function fail(message: string, commandUsage = usage): never {
  process.stderr.write(`simcsepp: ${message}\n\n${commandUsage}`)
  process.exit(2)
}

async function main(argv: string[]) {
  const [command, ...rest] = argv
  switch (command) {
    case 'bench':
      return benchCommand(rest)
    case 'train':
      return trainCommand(rest)
    case 'encode':
      return encodeCommand(rest)
    case 'search':
      return searchCommand(rest)
    case 'serve':
      return serveCommand(rest)
    case 'mine':
      return mineCommand(rest)
    case 'eval':
      return evalCommand(rest)
    case 'export':
      return exportCommand(rest)
    case 'push':
      return pushCommand(rest)
    case 'reduce':
      return reduceCommand(rest)
    case 'info':
      parseFlags(infoUsage, { args: rest, options: {} })
      process.stdout.write(JSON.stringify({ cpuThreads: numThreads(), cuda: cudaStatus() }, null, 2) + '\n')
      return
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(usage)
      return
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`simcsepp ${version()}\n`)
      return
    default:
      fail(`unknown command '${command}'${didYouMean(command, Object.keys(COMMAND_USAGE)).replace('--', '')}`)
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  if (e instanceof HelpRequest) return void process.stdout.write(e.usage)
  if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
    fail(e.message, COMMAND_USAGE[process.argv[2]] ?? usage)
  process.stderr.write(`simcsepp: ${e.message}\n`)
  process.exit(1)
})
