// Runs in every test file (vitest.config.ts setupFiles): whatever databases the file made and did
// not drop itself are dropped when it ends, and so are its keys in Redis (the redis run).
import { afterAll } from 'vitest'
// Not from app.ts: that would load the whole app (src/app.ts and every domain module) into every
// file before its own vi.mock calls could apply (test/unit/clients.test.ts mocks lib/crypto.ts).
import { releaseTestDatabases } from './database.js'
import { redisInspector, TEST_REDIS_ENV } from './redis-server.js'

afterAll(releaseTestDatabases)
afterAll(async () => {
  const { REDIS_URL: url, REDIS_KEY_PREFIX: prefix } = TEST_REDIS_ENV
  if (!url || !prefix) return
  const redis = redisInspector(url)
  await redis.drop(prefix)
  await redis.close()
})
