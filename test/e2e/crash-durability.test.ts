// Faults (SQLite): a real server process is SIGKILLed during a registration storm. Restarted on
// the same file, it has every registration it acknowledged (201), and the file is intact
// (WAL with synchronous=NORMAL is durable across a process crash).
import { join } from 'node:path'
import SQLite from 'better-sqlite3'
import { afterAll, expect, it } from 'vitest'
import { tempDir } from '../helpers/app.js'
import { logIn, signUp } from '../helpers/http.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const dir = tempDir()
const file = join(dir.path, 'storm.db')
const env = {
  DATABASE_URL: `sqlite:///${file}`,
  JWT_ISSUER: 'http://authgate.test',
  REGISTRATIONS_PER_IP_PER_HOUR: '100000',
}
const servers: ServerProcess[] = []

afterAll(async () => {
  for (const server of servers) await server.stop()
  dir.cleanup()
})

const TOTAL = 200
const CONCURRENCY = 16
// SIGKILL once this many sign-ups have been acknowledged: mid-storm, with more in flight.
const KILL_AFTER = 60

/** The status of an answer, read to its end; 0 when the connection died with the process. */
async function statusOf(answer: Promise<Response>): Promise<number> {
  try {
    const res = await answer
    await res.arrayBuffer()
    return res.status
  } catch {
    return 0 // not acknowledged
  }
}

it('keeps every acknowledged registration and an intact file after a SIGKILL mid-storm', async () => {
  const first = await startServerProcess(env)
  servers.push(first)
  const acknowledged: string[] = []
  const exited = new Promise<void>((resolve) => first.child.once('exit', () => resolve()))
  let next = 0
  let killedAt = -1
  const worker = async () => {
    while (next < TOTAL) {
      const username = `storm${String(next++).padStart(3, '0')}`
      const status = await statusOf(signUp(first, username))
      if (status === 201) acknowledged.push(username)
      else if (status !== 0) throw new Error(`sign-up ${username}: ${status}`)
      if (acknowledged.length >= KILL_AFTER && killedAt < 0) {
        killedAt = next
        first.child.kill('SIGKILL')
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  await exited
  expect(first.child.signalCode).toBe('SIGKILL')
  // Killed with requests still in flight, not after the storm had ended.
  expect(killedAt).toBeGreaterThan(0)
  expect(killedAt).toBeLessThan(TOTAL)
  expect(acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER)

  const second = await startServerProcess(env)
  servers.push(second)
  // Every acknowledged user is there (one query), and a sample of them can log in (argon2 is slow).
  const db = new SQLite(file, { readonly: true })
  try {
    const rows = db.prepare('select username from users where username like ?').all('storm%') as {
      username: string
    }[]
    const stored = new Set(rows.map((r) => r.username))
    expect(acknowledged.filter((u) => !stored.has(u))).toEqual([])
  } finally {
    db.close()
  }
  const sample = [acknowledged[0], acknowledged[Math.floor(acknowledged.length / 2)], acknowledged.at(-1)]
  for (const username of sample) expect(await statusOf(logIn(second, username as string)), username).toBe(200)
  // A second registration of an acknowledged name is refused: the row is really there.
  expect(await statusOf(signUp(second, acknowledged[0] as string))).toBe(409)
  await second.stop()

  const check = new SQLite(file)
  try {
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok')
    expect(check.pragma('foreign_key_check')).toEqual([])
  } finally {
    check.close()
  }
}, 90_000)
