// Runs in every test file (vitest.config.ts setupFiles): whatever databases the file made and did
// not drop itself are dropped when it ends, and so are its keys in Redis (the redis run).
import { afterAll } from 'vitest'
import { TEST_REDIS_ENV } from './app.js'
import { releaseTestDatabases } from './database.js'
import { redisInspector } from './redis-server.js'

afterAll(releaseTestDatabases)
afterAll(async () => {
  const { REDIS_URL: url, REDIS_KEY_PREFIX: prefix } = TEST_REDIS_ENV
  if (!url || !prefix) return
  const redis = redisInspector(url)
  await redis.drop(prefix)
  await redis.close()
})
