// Runs in every test file (vitest.config.ts setupFiles): whatever databases the file made and did
// not drop itself are dropped when it ends.
import { afterAll } from 'vitest'
import { releaseTestDatabases } from './database.js'

afterAll(releaseTestDatabases)
