// WORKERS=2: `authgate serve` as a node:cluster primary with two worker processes on one port and
// one SQLite file. Both serve, a token from either verifies on both, a logout is honoured by both,
// a killed worker comes back, and SIGTERM closes everything gracefully with exit code 0.

import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { PASSWORD, tempDir } from '../helpers/app.js'
import { bearer, form } from '../helpers/http.js'
import { keepAliveLoad } from '../helpers/keepalive-load.js'
import { msUntil } from '../helpers/poll.js'
import { requestOnce, type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const dir = tempDir('authgate-workers-')
let server: ServerProcess
let port: number

beforeAll(async () => {
  server = await startServerProcess(
    { WORKERS: '2', DATABASE_URL: `sqlite:///${join(dir.path, 'shared.db')}` },
    30_000,
    // A process group of its own, to be signalled as a closed terminal signals it.
    { detached: true },
  )
  port = Number(new URL(server.url).port)
  // /healthz answers once one worker listens; wait for both.
  await until(() => workerPids().length === 2)
  await until(async () => (await workersServing()).size === 2, 20_000)
}, 60_000)
afterAll(async () => {
  await server?.stop()
  dir.cleanup()
})

function primaryPid(): number {
  return server.child.pid as number
}

function workerPids(): number[] {
  const pid = primaryPid()
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()
    return text === '' ? [] : text.split(' ').map(Number)
  } catch {
    return []
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); its /proc status says so.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return false
  }
}

/** Milliseconds until `check` holds, checking every 50 ms; throws after `limit`. */
const until = (check: () => boolean | Promise<boolean>, limit = 10_000) => msUntil(check, limit, 50)

/** One request on a connection of its own, so the primary hands each to the next worker. */
const call = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
  requestOnce(method, `http://127.0.0.1:${port}${path}`, { headers, body, timeoutMs: 5_000 })

/** Inodes of the established TCP connections to our port, from /proc/net/tcp (server side). */
function serverSideInodes(): Set<string> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const inodes = new Set<string>()
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length > 9 && f[1]?.endsWith(`:${hexPort}`) && f[3] === '01') inodes.add(f[9] as string)
  }
  return inodes
}

/** Worker pids holding at least one of those connections. */
function pidsHolding(inodes: Set<string>): Set<number> {
  const holders = new Set<number>()
  for (const pid of workerPids()) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let link: string
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue
      }
      const m = /^socket:\[(\d+)\]$/.exec(link)
      if (m && inodes.has(m[1] as string)) holders.add(pid)
    }
  }
  return holders
}

/** Opens `n` kept-alive connections, each answered once; returns the workers that hold them. */
async function workersServing(n = 4): Promise<Set<number>> {
  const sockets: Socket[] = []
  try {
    for (let i = 0; i < n; i++) {
      const socket = createConnection({ host: '127.0.0.1', port })
      sockets.push(socket)
      await once(socket, 'connect')
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      const [chunk] = (await once(socket, 'data')) as [Buffer]
      expect(chunk.toString()).toMatch(/^HTTP\/1\.1 200 /)
    }
    return pidsHolding(serverSideInodes())
  } finally {
    for (const s of sockets) s.destroy()
  }
}

const json = { 'content-type': 'application/json' }

async function signUpAndLogin(username: string): Promise<{ access_token: string }> {
  const created = await call('POST', '/auth/', json, JSON.stringify({ username, password: PASSWORD }))
  expect(created.status).toBe(201)
  const login = await call(
    'POST',
    '/auth/token',
    form,
    new URLSearchParams({ username, password: PASSWORD }).toString(),
  )
  expect(login.status).toBe(200)
  return JSON.parse(login.body) as { access_token: string }
}

it('runs two worker processes under the primary, and both serve requests', async () => {
  const workers = workerPids()
  expect(workers).toHaveLength(2)
  expect(new Set(workers).size).toBe(2)
  expect(workers).not.toContain(primaryPid())
  expect([...(await workersServing())].sort()).toEqual([...workers].sort())
})

it('accepts a token issued through one worker on both', async () => {
  const { access_token } = await signUpAndLogin('clusteruser')
  const auth = bearer(access_token)
  const statuses = await Promise.all(Array.from({ length: 20 }, () => call('GET', '/', auth)))
  expect(statuses.map((r) => r.status)).toEqual(Array(20).fill(200))
})

it('honours a logout on both workers within 2 s', async () => {
  const { access_token } = await signUpAndLogin('leaver')
  const auth = bearer(access_token)
  expect((await call('GET', '/', auth)).status).toBe(200)
  expect((await call('POST', '/auth/logout', auth)).status).toBe(204)
  // Four fresh connections in a row reach both workers (round robin).
  const ms = await until(async () => {
    const four = await Promise.all(Array.from({ length: 4 }, () => call('GET', '/', auth)))
    return four.every((r) => r.status === 401)
  }, 5_000)
  expect(ms).toBeLessThan(2_000)
})

it('restarts a worker killed with SIGKILL, and service continues meanwhile', {
  timeout: 60_000,
}, async () => {
  const [victim, survivor] = workerPids() as [number, number]
  process.kill(victim, 'SIGKILL')
  // Once the primary has reaped it (a connection handed to a worker in the moment it dies is
  // lost: node:cluster's round robin), the other worker answers everything meanwhile.
  await until(() => !alive(victim) && !workerPids().includes(victim))
  for (let i = 0; i < 4; i++) {
    // One retry: the primary may still hand a connection to the dead worker for a moment.
    const res = await call('GET', '/healthz').catch(() => call('GET', '/healthz'))
    expect(res.status).toBe(200)
  }
  // A fresh worker starts from scratch (tsx compiles the sources): slow on a loaded machine.
  await until(() => {
    const now = workerPids()
    return now.length === 2 && !now.includes(victim) && now.includes(survivor)
  }, 30_000)
  await until(async () => (await workersServing()).size === 2, 20_000)
  expect(server.output()).toMatch(/worker died: restarting it/)
})

it('on SIGHUP replaces every worker one at a time, and no request fails meanwhile', {
  timeout: 120_000,
}, async () => {
  const { access_token } = await signUpAndLogin('steady')
  const auth = bearer(access_token)
  const before = workerPids()
  expect(before).toHaveLength(2)
  // Four clients that keep calling, one fresh connection after another, all through the restart:
  // some connections reach a worker just as it is asked to close.
  const failures: string[] = []
  let calls = 0
  let done = false
  const client = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (!done) {
        calls++
        const res = await call('GET', '/', auth).catch((err: Error) => ({ status: 0, body: err.message }))
        if (res.status !== 200) failures.push(`${res.status} ${res.body}`)
      }
    }),
  )
  // And a client that sent half a request line and nothing more: cut once the drain time is up,
  // so it cannot hold the restart. (One that sent nothing at all is idle: closed at once.)
  const silent = createConnection({ host: '127.0.0.1', port })
  await once(silent, 'connect')
  silent.write('GET / HT')
  const silentClosed = once(silent, 'close')
  const logged = server.output().length
  process.kill(primaryPid(), 'SIGHUP')
  try {
    // Done when two workers run and neither is an old one (and the old ones are gone).
    await until(() => {
      const now = workerPids()
      return now.length === 2 && now.every((pid) => !before.includes(pid)) && before.every((p) => !alive(p))
    }, 90_000)
  } finally {
    done = true
    await client
  }
  expect(failures).toEqual([])
  expect(calls).toBeGreaterThan(10)
  await silentClosed
  expect(server.output().slice(logged)).toMatch(/connections still open after \d+ ms: closing them/)
  // Replaced, not died and restarted, nor killed.
  expect(server.output().slice(logged)).not.toMatch(/worker died|killing it/)
  await until(async () => (await workersServing()).size === 2, 20_000)
})

/** Resolves once `before` are all gone and two other workers run, both accepting connections. */
async function replaced(before: number[], limit = 60_000): Promise<number[]> {
  await until(() => {
    const now = workerPids()
    return now.length === 2 && now.every((pid) => !before.includes(pid)) && before.every((p) => !alive(p))
  }, limit)
  await until(async () => (await workersServing()).size === 2, 20_000)
  return workerPids()
}

/** Keep-alive clients of both kinds; the counts say what failed, per kind. */
async function steadyLoad(username: string) {
  const { access_token } = await signUpAndLogin(`${username}-get`)
  // Logins on an account of their own: past MAX_SESSIONS_PER_USER they end the oldest sessions.
  await signUpAndLogin(`${username}-post`)
  return keepAliveLoad(server.url, {
    bearer: `Bearer ${access_token}`,
    loginForm: new URLSearchParams({ username: `${username}-post`, password: PASSWORD }).toString(),
  })
}

it('three SIGHUPs under keep-alive load fail no GET / and no POST /auth/token', {
  timeout: 120_000,
}, async () => {
  const load = await steadyLoad('keepalive')
  const logged = server.output().length
  try {
    for (let i = 0; i < 3; i++) {
      const before = workerPids()
      expect(before).toHaveLength(2)
      process.kill(primaryPid(), 'SIGHUP')
      await replaced(before)
    }
  } finally {
    await load.stop()
  }
  const { get, post, failures } = load.counts
  console.info(
    `three SIGHUPs under load: GET / ${JSON.stringify(get)}, POST /auth/token ${JSON.stringify(post)}`,
  )
  expect(failures).toEqual([])
  // A retried GET is a kept-alive connection the server reset between two requests (9 to 11 in
  // three restarts before issue 10): these clients never leave one idle for the second after
  // which a closing worker may close it, so none is expected.
  expect({ getFailed: get.failed, getRetried: get.retried, postFailed: post.failed }).toEqual({
    getFailed: 0,
    getRetried: 0,
    postFailed: 0,
  })
  expect(get.ok).toBeGreaterThan(100)
  expect(post.ok).toBeGreaterThan(3)
  expect(server.output().slice(logged)).not.toMatch(/worker died|killing it/)
})

it('queues a SIGHUP that arrives during a rolling restart: the workers are replaced twice', {
  timeout: 120_000,
}, async () => {
  const before = workerPids()
  // Every worker started from now on, in order of appearance.
  const started: number[] = []
  const watch = setInterval(() => {
    for (const pid of workerPids()) if (!before.includes(pid) && !started.includes(pid)) started.push(pid)
  }, 20)
  try {
    process.kill(primaryPid(), 'SIGHUP')
    await until(() => started.length >= 1)
    process.kill(primaryPid(), 'SIGHUP')
    // The second restart replaces the workers the first one started.
    await until(() => {
      const now = workerPids()
      return (
        now.length === 2 &&
        now.every((pid) => started.indexOf(pid) >= 2) &&
        started.slice(0, 2).every((pid) => !alive(pid))
      )
    }, 90_000)
  } finally {
    clearInterval(watch)
  }
  await until(async () => (await workersServing()).size === 2, 20_000)
})

it('finishes a rolling restart in which an old worker is killed, and restarts again on the next SIGHUP', {
  timeout: 120_000,
}, async () => {
  const before = workerPids()
  expect(before).toHaveLength(2)
  const logged = server.output().length
  process.kill(primaryPid(), 'SIGHUP')
  // The first successor is starting: kill the old worker whose turn has not come (the primary
  // replaces its workers in the order it forked them).
  await until(() => workerPids().some((pid) => !before.includes(pid)))
  process.kill(Math.max(...before), 'SIGKILL')
  const after = await replaced(before)
  expect(server.output().slice(logged)).toMatch(/worker died/)
  // Not wedged: the next SIGHUP replaces every worker again.
  process.kill(primaryPid(), 'SIGHUP')
  await replaced(after)
})

it('on a SIGHUP to the whole process group (a closed terminal), does one rolling restart and fails no request', {
  timeout: 120_000,
}, async () => {
  const load = await steadyLoad('grouped')
  const before = workerPids()
  const logged = server.output().length
  try {
    process.kill(-primaryPid(), 'SIGHUP')
    await replaced(before)
  } finally {
    await load.stop()
  }
  const { get, post, failures } = load.counts
  expect(failures).toEqual([])
  expect({ getFailed: get.failed, getRetried: get.retried, postFailed: post.failed }).toEqual({
    getFailed: 0,
    getRetried: 0,
    postFailed: 0,
  })
  expect(get.ok).toBeGreaterThan(50)
  // The workers left the signal to the primary: none died of it.
  expect(server.output().slice(logged)).not.toMatch(/worker died/)
})

it('on SIGTERM to the primary, finishes an in-flight request, then everything exits 0', {
  timeout: 20_000,
}, async () => {
  await signUpAndLogin('lastone')
  const workers = workerPids()
  // A login whose headers are in but whose body is not: in flight, deterministically.
  const form = new URLSearchParams({ username: 'lastone', password: PASSWORD }).toString()
  const socket = createConnection({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  let raw = ''
  socket.setEncoding('utf8')
  socket.on('data', (d: string) => {
    raw += d
  })
  const closed = once(socket, 'close')
  socket.write(
    'POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      'Content-Type: application/x-www-form-urlencoded\r\n' +
      `Content-Length: ${Buffer.byteLength(form)}\r\nConnection: close\r\n\r\n${form.slice(0, 5)}`,
  )
  // Let the worker read the headers: a deliberate wait, as no client can see that it has.
  await sleep(200)

  const exited = once(server.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const signalledAt = Date.now()
  process.kill(primaryPid(), 'SIGTERM')
  // Shutdown has begun once new connections are refused; only then send the rest of the body.
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const probe = createConnection({ host: '127.0.0.1', port })
        probe.on('connect', () => {
          probe.destroy()
          resolve(false)
        })
        probe.on('error', () => resolve(true))
      }),
    5_000,
  )
  socket.write(form.slice(5))
  await closed
  expect(raw).toMatch(/^HTTP\/1\.1 200 /)
  expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)

  const [code, signal] = await exited
  expect({ code, signal }).toEqual({ code: 0, signal: null })
  expect(Date.now() - signalledAt).toBeLessThan(5_000)
  await until(() => workers.every((pid) => !alive(pid)), 2_000)
  expect(server.output()).not.toMatch(/exiting now|did not close cleanly|error while closing/)
})

it('with WORKERS=1, logs SIGHUP and keeps serving (no exit 129)', { timeout: 60_000 }, async () => {
  const single = await startServerProcess({
    LOG_LEVEL: 'info',
    DATABASE_URL: `sqlite:///${join(dir.path, 'single.db')}`,
  })
  try {
    const exited = once(single.child, 'exit').then(() => true)
    single.child.kill('SIGHUP')
    const gone = await Promise.race([
      exited,
      until(() => /"msg":"SIGHUP[^"]*"/.test(single.output())).then(() => false),
    ])
    expect({ exited: gone, code: single.child.exitCode, signal: single.child.signalCode }).toEqual({
      exited: false,
      code: null,
      signal: null,
    })
    expect((await fetch(`${single.url}/healthz`)).status).toBe(200)
  } finally {
    await single.stop()
  }
})
