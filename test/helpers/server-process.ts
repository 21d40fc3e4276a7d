// Starts `authgate serve` from source as a real child process on a free port, for tests that need
// a second server process beside the one in the test.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

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

export interface ServerProcess {
  url: string
  child: ChildProcess
  output(): string
  stop(): Promise<void>
}

export interface StartOptions {
  /** A process group of its own (the primary and its workers), to signal it as a terminal would. */
  detached?: boolean
}

export async function startServerProcess(
  env: Record<string, string>,
  startupMs = 30_000,
  options: StartOptions = {},
): Promise<ServerProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'serve'], {
    cwd: ROOT,
    detached: options.detached ?? false,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (d) => {
    output += d
  })
  child.stderr?.on('data', (d) => {
    output += d
  })
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
  const deadline = Date.now() + startupMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${output}`)
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child, output: () => output, stop }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`server did not start within ${startupMs} ms: ${output}`)
    }
    await sleep(100)
  }
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
