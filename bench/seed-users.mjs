// Creates the bench's users straight through the domain (dist/), before the server starts: sign-up
// over HTTP is throttled per address, which is right for the internet and wrong for a bench setup.
// Usage: node bench/seed-users.mjs <DATABASE_URL> <count> <password>
import { loadConfig } from '../dist/config.js'
import { openServices } from '../dist/services.js'

const [url, count, password] = process.argv.slice(2)
const services = await openServices(loadConfig({ DATABASE_URL: url }))
try {
  for (let i = 0; i < Number(count); i++)
    await services.users.register(`benchuser${i === 0 ? '' : i}`, password)
} finally {
  await services.audit.flush()
  await services.db.destroy()
}
