#!/usr/bin/env node
// `npm start`'s first step: builds dist/ (`npm run build`, tsc) only when it is missing or older
// than what it is built from, and says so when it does (on stderr: stdout is the server's JSON log).
// tsc rewrites every output on each build, so dist/cli/index.js is as old as the last build;
// any file or folder of src/ (a folder's time changes when a file is added, renamed or removed),
// or a tsconfig or package.json, newer than it means the build is stale.
//
// Not a `prepare` script: `npm ci` would then run tsc on every CI install, where `npm test`
// type-checks anyway, and in a production install (`npm ci --omit=dev`) TypeScript is absent, so
// `prepare` would fail the install itself. Here a production image that ships a built dist/ starts
// without TypeScript at all.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const OUTPUT = join(ROOT, 'dist', 'cli', 'index.js')
const INPUTS = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json']

/** The most recently changed file or folder under `path` (itself included). */
function newest(path, found = { path, mtimeMs: 0 }) {
  const stat = statSync(path)
  if (stat.mtimeMs > found.mtimeMs) Object.assign(found, { path, mtimeMs: stat.mtimeMs })
  if (stat.isDirectory()) for (const entry of readdirSync(path)) newest(join(path, entry), found)
  return found
}

/** Why dist/ must be built, or undefined when it is up to date. */
function staleness() {
  if (!existsSync(OUTPUT)) return 'dist/ has not been built'
  const builtAt = statSync(OUTPUT).mtimeMs
  const changed = { path: '', mtimeMs: 0 }
  for (const input of INPUTS) if (existsSync(join(ROOT, input))) newest(join(ROOT, input), changed)
  return changed.mtimeMs > builtAt
    ? `${relative(ROOT, changed.path)} changed since the last build`
    : undefined
}

function build(why) {
  if (!existsSync(join(ROOT, 'node_modules', 'typescript', 'package.json'))) {
    console.error(
      `authgate: ${why}, and TypeScript is not installed here (a production install?). ` +
        'Build where the dev dependencies are (npm ci && npm run build) and ship dist/ with the app.',
    )
    process.exit(1)
  }
  console.error(`authgate: building dist/ (${why}): npm run build...`)
  const startedAt = Date.now()
  // Under `npm start`, npm_execpath is npm's own CLI: the same npm runs the build.
  const npm = process.env.npm_execpath
  const result = npm
    ? spawnSync(process.execPath, [npm, 'run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
  if (result.status !== 0) {
    console.error(
      `authgate: the build failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`,
    )
    process.exit(1)
  }
  console.error(`authgate: built dist/ in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`)
}

const why = staleness()
if (why !== undefined) build(why)
