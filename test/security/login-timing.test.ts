// An unknown username costs the same as a wrong password: both pay one argon2id verify.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createPasswordHasher } from '../../src/domain/passwords.js'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import { logIn, signUp } from '../helpers/http.js'

let t: TestApp
beforeAll(async () => {
  // The production hasher: the point is the real cost of a verify.
  t = await buildTestApp({}, { hasher: createPasswordHasher() })
  await signUp(t.app, 'known-user')
})
afterAll(async () => {
  await t.close()
})

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0

async function timed(username: string): Promise<number> {
  const start = process.hrtime.bigint()
  const res = await logIn(t.app, username, `${PASSWORD}-wrong`)
  expect(res.statusCode).toBe(401)
  return Number(process.hrtime.bigint() - start) / 1e6
}

it('answers unknown users and wrong passwords in the same time, within noise', async () => {
  const known: number[] = []
  const unknown: number[] = []
  // Interleaved, so machine noise hits both series alike.
  for (let i = 0; i < 25; i++) {
    known.push(await timed('known-user'))
    unknown.push(await timed(`ghost-${i}`))
  }
  const [k, u] = [median(known), median(unknown)]
  // Without the dummy verify an unknown user answers in well under a millisecond, against
  // several milliseconds for a real argon2id verify: a ratio far outside this band.
  expect(u / k).toBeGreaterThan(0.6)
  expect(u / k).toBeLessThan(1.6)
  expect(Math.min(k, u)).toBeGreaterThan(2)
})
