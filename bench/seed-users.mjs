// Creates the bench's users straight through the domain (dist/), before the server starts: sign-up
// over HTTP is throttled per address, which is right for the internet and wrong for a bench setup.
// With a TOTP count, that many more accounts (benchtotp0, ...) get an authenticator enrolled and
// confirmed, with the secret bench/totp.mjs derives from the name, sealed under BENCH_MFA_KEY.
// Usage: node bench/seed-users.mjs <DATABASE_URL> <count> <password> [<totp count>]
import { loadConfig } from '../dist/config.js'
import { createTotpSealer } from '../dist/domain/mfa.js'
import { openServices } from '../dist/services.js'
import { createMfaRepository } from '../dist/storage/mfa.repository.js'
import { BENCH_MFA_KEY, TOTP_USER, totpSecretOf } from './totp.mjs'

const [url, count, password, totpCount = '0'] = process.argv.slice(2)
const services = await openServices(loadConfig({ DATABASE_URL: url }))
try {
  for (let i = 0; i < Number(count); i++)
    await services.users.register(`benchuser${i === 0 ? '' : i}`, password)
  const sealer = createTotpSealer([BENCH_MFA_KEY])
  const mfa = createMfaRepository(services.db)
  const now = Date.now()
  // Confirmed at a step long past, so every code from now on is later than the last one accepted.
  const step = Math.floor(now / 30_000) - 100
  const BATCH = 8 // argon2 runs on libuv's pool: a few at once
  for (let i = 0; i < Number(totpCount); i += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, Number(totpCount) - i) }, async (_, j) => {
        const username = `${TOTP_USER}${i + j}`
        const user = await services.users.register(username, password)
        const sealed = sealer.seal(user.id, totpSecretOf(username))
        if (!(await mfa.beginTotp(user.id, sealed, now)))
          throw new Error(`${username}: TOTP already enrolled`)
        if (!(await mfa.confirmTotp(user.id, sealed, step, now, [`bench-unused-${i + j}`])))
          throw new Error(`${username}: TOTP not confirmed`)
      }),
    )
  }
} finally {
  await services.audit.flush()
  await services.db.destroy()
}
