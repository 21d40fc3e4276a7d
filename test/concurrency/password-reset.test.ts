// A reset link is used once (issue 13 item 3), across two real server processes sharing the
// database: ten requests with one link, each with its own new password, race on both instances;
// exactly one sets its password, and the rest are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PASSWORD } from '../helpers/app.js'
import { logIn } from '../helpers/http.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { linkToken, TestSmtpServer } from '../helpers/smtp.js'
import { topologies, trials, useDeployment } from './harness.js'

const ENV = { REGISTRATIONS_PER_IP_PER_HOUR: '100000', LOGIN_IP_MAX_FAILURES: '100000' }

const post = (on: ServerProcess, path: string, body: unknown) =>
  fetch(`${on.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })

describe.each(topologies(['sqlite', 'postgres']))('a reset link on two instances of $name', (topology) => {
  const smtp = new TestSmtpServer()
  beforeAll(async () => {
    if (topology.run) await smtp.start()
  })
  afterAll(async () => {
    if (topology.run) await smtp.close()
  })
  const deployment = useDeployment(topology, ENV, 2, { instanceEnv: () => ({ SMTP_URL: smtp.url }) })
  const pick = (k: number) => deployment.instances[k % 2] as ServerProcess

  it.runIf(topology.run)('used 10 times at once: exactly one new password is set', async () => {
    await trials(`one reset link, 10 times (${topology.name})`, 3, async (i) => {
      const [a] = deployment.instances as [ServerProcess]
      const name = `reset-${i}`
      expect(
        (await post(a, '/auth/', { username: name, password: PASSWORD, email: `${name}@example.test` }))
          .status,
      ).toBe(201)
      const verify = linkToken(await smtp.next(), '/email/verify')
      expect((await post(a, '/auth/email/verify', { token: verify })).status).toBe(204)
      expect((await post(a, '/auth/password/forgot', { email: `${name}@example.test` })).status).toBe(202)
      const token = linkToken(await smtp.next(), '/password/reset')
      const passwords = Array.from({ length: 10 }, (_, k) => `new horse battery staple number ${k}`)
      const statuses = await Promise.all(
        passwords.map(
          async (password, k) =>
            (await post(pick(k), '/auth/password/reset', { token, new_password: password })).status,
        ),
      )
      expect(
        statuses.filter((s) => s !== 204 && s !== 400),
        `trial ${i}: ${statuses}`,
      ).toEqual([])
      expect(
        statuses.filter((s) => s === 204),
        `trial ${i}: ${statuses}`,
      ).toHaveLength(1)
      const winner = passwords[statuses.indexOf(204)] as string
      const logins = await Promise.all(passwords.map(async (p) => (await logIn(a, name, p)).status))
      expect(logins.filter((s) => s === 200)).toHaveLength(1)
      expect((await logIn(a, name, winner)).status).toBe(200)
    })
  })
})
