// An unknown username costs the same as a wrong password: both pay one argon2id verify.
import * as argon2 from '@node-rs/argon2'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createPasswordHasher } from '../../src/domain/passwords.js'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import { logIn, signUp } from '../helpers/http.js'

let t: TestApp
// The stored hash each verify was given, in order.
const verified: string[] = []
beforeAll(async () => {
  // The production hasher: the point is the real cost of a verify.
  const real = createPasswordHasher()
  t = await buildTestApp(
    {},
    {
      hasher: {
        hash: (password) => real.hash(password),
        needsRehash: (stored) => real.needsRehash(stored),
        verify: (stored, password) => {
          verified.push(stored)
          return real.verify(stored, password)
        },
      },
    },
  )
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

it('verifies an unknown user against a hash of the same cost as a stored one', async () => {
  // The timing below can only be noisy; this is exact: one argon2id verify each, same parameters.
  verified.length = 0
  expect((await logIn(t.app, 'ghost', PASSWORD)).statusCode).toBe(401)
  expect(verified).toHaveLength(1)
  expect((await logIn(t.app, 'known-user', `${PASSWORD}-wrong`)).statusCode).toBe(401)
  expect(verified).toHaveLength(2)
  const [dummy, stored] = verified as [string, string]
  expect(dummy).toMatch(/^\$argon2id\$/)
  expect(dummy).not.toBe(stored)
  expect(argon2.parseOptions(dummy)).toEqual(argon2.parseOptions(stored))
})

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
