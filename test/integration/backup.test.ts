// The backup and restore commands of docs/operations.md, run as written against a live app: the
// copy is consistent while sign-ups go on, and a restored deployment verifies the tokens it had
// issued (the signing keys travel with the data) and logs its users in.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import {
  buildTestApp,
  fastHasher,
  freshDatabase,
  onPostgres,
  PASSWORD,
  requirePrerequisite,
  type TestApp,
  type TestDatabase,
  tempDir,
} from '../helpers/app.js'
import { bearer, greet, logIn, signUp, tokenFor } from '../helpers/http.js'

const run = promisify(execFile)

async function has(command: string): Promise<boolean> {
  try {
    await run(command, ['--version'])
    return true
  } catch {
    return false
  }
}

const tool = onPostgres ? 'pg_dump and pg_restore' : 'the sqlite3 shell (apt-get install sqlite3)'
const present = requirePrerequisite(await has(onPostgres ? 'pg_dump' : 'sqlite3'), tool)

describe.skipIf(!present)(`backup and restore (${onPostgres ? 'pg_dump' : 'sqlite3 .backup'})`, () => {
  let source: TestApp
  let target: TestDatabase
  const dir = tempDir('authgate-backup-')

  beforeAll(async () => {
    source = await buildTestApp()
    target = await freshDatabase()
  })
  afterAll(async () => {
    await source.close()
    await target.drop()
    dir.cleanup()
  })

  /** The documented command, with the documented restore. */
  async function backupAndRestore(): Promise<void> {
    if (onPostgres) {
      const file = join(dir.path, 'authgate.dump')
      await run('pg_dump', ['--format=custom', `--file=${file}`, source.dbUrl])
      await run('pg_restore', ['--clean', '--if-exists', '--no-owner', `--dbname=${target.url}`, file])
    } else {
      const path = source.db.path as string
      await run('sqlite3', [path, `.backup '${target.path}'`])
      const { stdout } = await run('sqlite3', [target.path as string, 'PRAGMA integrity_check'])
      expect(stdout.trim()).toBe('ok')
    }
  }

  it('copies a live database: tokens it issued verify on the copy, its users log in', async () => {
    const token = await tokenFor(source.app, 'backup-keeper')
    const revokedLater = (await logIn(source.app, 'backup-keeper')).json().access_token as string

    // Sign-ups keep landing while the copy is taken.
    let signups = 0
    let copying = true
    const writer = (async () => {
      while (copying) {
        const res = await signUp(source.app, `during-${signups}`)
        expect(res.statusCode).toBe(201)
        signups++
      }
    })()
    try {
      await backupAndRestore()
    } finally {
      copying = false
      await writer
    }
    expect(signups).toBeGreaterThan(0)
    // After the copy: this session ends on the source, but not in the backup.
    const out = await source.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: bearer(revokedLater),
    })
    expect(out.statusCode).toBe(204)

    const restored = await buildApp(loadConfig({ DATABASE_URL: target.url, RATE_LIMIT: 'off' }), {
      hasher: fastHasher,
    })
    try {
      const hello = await greet(restored, token)
      expect(hello.statusCode, hello.body).toBe(200)
      expect(hello.json().message).toMatch(/^Hello, backup-keeper with ID: \d+!$/)
      expect((await logIn(restored, 'backup-keeper', PASSWORD)).statusCode).toBe(200)
      // What docs/operations.md warns about: a restore brings back what was revoked after it.
      const back = await greet(restored, revokedLater)
      expect(back.statusCode).toBe(200)
    } finally {
      await restored.close()
    }
  })
})
