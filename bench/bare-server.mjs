// The baseline for bench/run.mjs: a bare Fastify route with the body AuthGate's GET / returns for
// the bench user, and nothing else: no auth, no logging, no schemas, no plugins.
// Usage: PORT=1234 node bench/bare-server.mjs   (prints "listening <address>" when ready)
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/', async () => ({ message: 'Hello, benchuser with ID: 1!' }))

const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
console.log(`listening ${address}`)

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    app.close().then(() => process.exit(0))
  })
}
