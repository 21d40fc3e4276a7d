// The `authgate` CLI as an operator runs it: in-process (runCli: the program with this test's
// environment, stdin and output streams), or as a real child process from source (spawnCli).
import { spawn } from 'node:child_process'
import { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { runCli as run } from '../../src/cli/program.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(Buffer.from(chunk))
      done()
    },
  })
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') }
}

/**
 * Runs `authgate <args>` in this process. Only `env` (and LOG_LEVEL=silent) is its environment:
 * nothing from the developer's shell or .env leaks in. stdin is a pipe holding `stdin`.
 */
export async function runCli(args: string[], env: Record<string, string>, stdin = ''): Promise<CliRun> {
  const stdout = collector()
  const stderr = collector()
  const code = await run(args, {
    env: { LOG_LEVEL: 'silent', ...env },
    stdin: Readable.from(stdin === '' ? [] : [Buffer.from(stdin)]),
    stdout: stdout.stream,
    stderr: stderr.stream,
  })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}

/** Runs the `authgate` binary from source in a child process, with `stdin` piped (no TTY). */
export function spawnCli(args: string[], env: Record<string, string>, stdin = ''): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
      cwd: root,
      // Only what the test gives, plus PATH: nothing from the developer's shell leaks in.
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })
}
