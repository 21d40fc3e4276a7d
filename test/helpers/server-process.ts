// Real child processes for tests: `authgate serve` from source on a free port (startServerProcess),
// or any command (spawnUntilReady), started and awaited until the line that says it serves.
import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** What `authgate serve` logs once it listens (src/server.ts STARTED), in JSON or pretty lines. */
export const STARTED_LINE = /AuthGate started/

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return address.port
}

export interface SpawnOptions {
  /** The program (default: this Node, with tsx so a .ts entry runs from source) and its arguments. */
  command?: string
  args: string[]
  /** Where it listens, as the test will call it; the helper does not choose it. */
  url: string
  env: Record<string, string>
  cwd?: string
  /** A process group of its own, to signal it as a terminal would. */
  detached?: boolean
}

export interface Spawned {
  url: string
  child: ChildProcess
  stdout(): string
  stderr(): string
  /** stdout and stderr, interleaved as they came. */
  output(): string
  /** Settles when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /**
   * Resolves with the first complete line of stdout (or `from`) matching `pattern` (one already
   * printed counts); rejects, with the process's stderr, if it closes first or `timeoutMs` pass.
   */
  line(pattern: RegExp, timeoutMs: number, from?: 'stdout' | 'stderr'): Promise<string>
  /** SIGTERM, then waits for the exit (at once if it has exited). */
  stop(): Promise<void>
}

/** Starts the process and returns at once; see spawnUntilReady to wait for it to serve. */
export function spawnProcess(options: SpawnOptions): Spawned {
  const { command = process.execPath, args, url, env, cwd = ROOT, detached = false } = options
  const child = spawn(command, command === process.execPath ? ['--import', 'tsx', ...args] : args, {
    cwd,
    detached,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const name = [command === process.execPath ? 'node' : command, ...args].join(' ')
  let stdout = ''
  let stderr = ''
  let output = ''
  const printed = new EventEmitter()
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
    output += d
    printed.emit('line')
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
    output += d
    printed.emit('line')
  })
  // 'close' comes after the exit and the end of its output: nothing more can match after it.
  let closed = false
  child.once('close', () => {
    closed = true
    printed.emit('close')
  })
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }))
  const running = () => child.exitCode === null && child.signalCode === null
  return {
    url,
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    output: () => output,
    exited,
    line(pattern, timeoutMs, from = 'stdout') {
      return new Promise((resolve, reject) => {
        const found = () =>
          (from === 'stdout' ? stdout : stderr)
            .split('\n')
            .slice(0, -1)
            .find((l) => pattern.test(l))
        const settle = (err: Error | undefined, line?: string) => {
          clearTimeout(timer)
          printed.off('line', onLine)
          printed.off('close', onClose)
          if (err) reject(err)
          else resolve(line as string)
        }
        const onLine = () => {
          const line = found()
          if (line !== undefined) settle(undefined, line)
        }
        const failed = (why: string) =>
          new Error(
            `${name}: ${why} before a line matched ${pattern}\nstderr:\n${stderr}\nstdout:\n${stdout}`,
          )
        const onClose = () => settle(failed(`exited (${child.signalCode ?? child.exitCode})`))
        const timer = setTimeout(() => settle(failed(`nothing within ${timeoutMs} ms`)), timeoutMs)
        printed.on('line', onLine)
        printed.on('close', onClose)
        onLine()
        if (closed) onClose()
      })
    },
    async stop() {
      if (!running()) return
      child.kill('SIGTERM')
      await exited
    },
  }
}

/**
 * Spawns, then waits for the line that says it serves (`ready`, on stdout unless `readyOn` says
 * stderr): an event, not a poll of /healthz. On a timeout or an early exit it stops the process
 * and throws with its stderr.
 */
export async function spawnUntilReady(
  options: SpawnOptions & { ready: RegExp; readyOn?: 'stdout' | 'stderr'; timeoutMs?: number },
): Promise<Spawned> {
  const spawned = spawnProcess(options)
  try {
    await spawned.line(options.ready, options.timeoutMs ?? 30_000, options.readyOn)
  } catch (err) {
    const { pid } = spawned.child
    // A group of its own (npm -> sh -> node, a primary and its workers): none of it may outlive the test.
    if (options.detached && pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        // the group is gone already
      }
    }
    await spawned.stop()
    throw err
  }
  return spawned
}

export type ServerProcess = Spawned

export interface StartOptions {
  /** A process group of its own (the primary and its workers), to signal it as a terminal would. */
  detached?: boolean
}

/**
 * `authgate serve` from source on a free port of 127.0.0.1, once it has logged its start-up line
 * (with WORKERS, the primary logs it once every worker listens). LOG_LEVEL is info unless `env`
 * says otherwise, as a level above it would hide that line.
 */
export async function startServerProcess(
  env: Record<string, string>,
  startupMs = 30_000,
  options: StartOptions = {},
): Promise<ServerProcess> {
  if (['warn', 'error', 'fatal', 'silent'].includes(env.LOG_LEVEL ?? '')) {
    throw new Error(`LOG_LEVEL=${env.LOG_LEVEL} hides the start-up line startServerProcess waits for`)
  }
  const port = await freePort()
  return spawnUntilReady({
    args: ['src/cli/index.ts', 'serve'],
    url: `http://127.0.0.1:${port}`,
    env: { LOG_LEVEL: 'info', ...env, PORT: String(port), HOST: '127.0.0.1' },
    ready: STARTED_LINE,
    timeoutMs: startupMs,
    ...options,
  })
}

/**
 * One HTTP request on a connection of its own (no agent, no keep-alive), so a WORKERS primary
 * hands each to the next worker; rejects when no answer comes within timeoutMs.
 */
export function requestOnce(
  method: string,
  url: string,
  options: { headers?: Record<string, string>; body?: string | undefined; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  const { headers = {}, body, timeoutMs = 5_000 } = options
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false }, (res) => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        data += d
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }))
    })
    req.on('error', reject)
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`${method} ${url}: no answer in ${timeoutMs / 1000} s`)),
    )
    req.end(body)
  })
}
