// `npm run bench`: AuthGate as in production against a bare Fastify route, in one run; prints a
// table and records it in docs/benchmarks.md. See that file for what is measured and why.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  countLines,
  cpuTimeOf,
  freePort,
  isRunning,
  load,
  memoryOf,
  okPerSecond,
  percentiles,
  problems,
  rssSampler,
  startNode,
  stopProcess,
  waitForHttp,
} from './lib.mjs'
import { oidcScenarios, prepareOidc } from './oidc.mjs'
import { consoleTable, markdownTable, updateDocs } from './report.mjs'
import { BENCH_MFA_KEY, totpLoginRequests } from './totp.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TARGETS = {
  ratio: 0.7,
  loginsPerSecond: 30,
  p99Ms: 25,
  rssMb: 300,
  // Issue 12 item 10: the OpenID Connect provider's endpoints.
  clientCredentialsPerSecond: 2000,
  introspectionRatio: 0.5,
  userinfoRatio: 0.5,
  codeExchangesPerSecond: 300,
}
const USERNAME = 'benchuser'
const PASSWORD = 'bench-password-7f3a-long-enough'
const EXPECTED_BODY = JSON.stringify({ message: `Hello, ${USERNAME} with ID: 1!` })

const HELP = `Usage: npm run bench [-- options]     (or: npm run build && node bench/run.mjs [options])

  --duration <s>         length of each measured run (default 10)
  --warmup <s>           warm-up before each measured run (default 3)
  --connections <n>      connections for the GET / throughput runs (default 50)
  --rounds <n>           throughput runs per server, alternating, best counts (default 2)
  --login-clients <n>    concurrent login clients (default 8)
  --users <n>            accounts the login clients take turns at, throttling on (default 200)
  --totp-users <n>       accounts with TOTP for the logins-with-TOTP run, each signing in at most
                         once per 30 s step (default 1000)
  --database-url <url>   an EMPTY database to run on instead of a fresh SQLite file (e.g. a new
                         PostgreSQL database); marks the run as a variant and implies --no-docs
  --get-connections <n>  GET / connections during the latency run (default 10)
  --get-rate <n>         GET / requests per second in the latency run, 0 = unthrottled (default 0)
  --env KEY=VALUE        extra environment for the AuthGate process (repeatable); marks the run
                         as a variant and implies --no-docs
  --no-metrics           skip the GET / throughput runs of a second AuthGate with METRICS_PORT set
  --no-oidc              skip the OpenID Connect scenarios (client_credentials, introspection,
                         UserInfo, code exchanges)
  --docs <path>          where to record the results (default docs/benchmarks.md)
  --no-docs              do not record the results
  --strict               exit 1 when a target is missed
  --keep                 keep the temporary directory (database, server logs) and print its path
  -h, --help`

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    'login-clients': { type: 'string', default: '8' },
    'totp-users': { type: 'string', default: '1000' },
    users: { type: 'string', default: '200' },
    'database-url': { type: 'string' },
    'get-connections': { type: 'string', default: '10' },
    'get-rate': { type: 'string', default: '0' },
    env: { type: 'string', multiple: true, default: [] },
    docs: { type: 'string', default: join(ROOT, 'docs', 'benchmarks.md') },
    'no-docs': { type: 'boolean', default: false },
    'no-metrics': { type: 'boolean', default: false },
    'no-oidc': { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (opts.help) {
  console.log(HELP)
  process.exit(0)
}

function positive(name, { zero = false } = {}) {
  const n = Number(opts[name])
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zero)) {
    console.error(`--${name}: expected a positive number, got ${opts[name]}`)
    process.exit(2)
  }
  return n
}
const DURATION = positive('duration')
const WARMUP = positive('warmup', { zero: true })
const CONNECTIONS = positive('connections')
const ROUNDS = positive('rounds')
const LOGIN_CLIENTS = positive('login-clients')
const USERS = positive('users')
const TOTP_USERS = positive('totp-users')
const GET_CONNECTIONS = positive('get-connections')
const GET_RATE = positive('get-rate', { zero: true })
const EXTRA_ENV = Object.fromEntries(
  opts.env.map((kv) => {
    const i = kv.indexOf('=')
    if (i < 1) {
      console.error(`--env: expected KEY=VALUE, got ${kv}`)
      process.exit(2)
    }
    return [kv.slice(0, i), kv.slice(i + 1)]
  }),
)
// Inherited variables that change how the server performs; shown with the results.
const PERF_ENV = ['UV_THREADPOOL_SIZE', 'NODE_OPTIONS']

// ---- cleanup, on every way out ------------------------------------------------------------------

const children = []
let tmp

function cleanupNow() {
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL')
  if (tmp && opts.keep) console.log(`Kept ${tmp}`)
  else if (tmp) rmSync(tmp, { recursive: true, force: true })
  tmp = undefined
}
process.on('exit', cleanupNow)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the servers and removing the temporary directory`)
    cleanupNow()
    process.exit(130)
  })
}

// ---- formatting ---------------------------------------------------------------------------------

const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a')
const ms = (n) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : 'n/a')
const pct = (f) => (Number.isFinite(f) ? `${Math.round(f * 100)}%` : 'n/a')
const mb = (n) => (Number.isFinite(n) ? n.toFixed(0) : 'n/a')
const log = (...args) => console.log(...args)

// ---- the servers --------------------------------------------------------------------------------

/** `name` keeps each instance's database and logs apart; `extraEnv` is on top of --env. */
async function startAuthGate(name = 'authgate', extraEnv = {}) {
  // The bench wants the DEFAULT configuration: drop every AuthGate variable from the inherited
  // environment and run in the temporary directory, so no ./.env is read either.
  const { EnvSchema } = await import('../dist/config.js')
  const env = { ...process.env }
  for (const key of Object.keys(EnvSchema.properties)) delete env[key]
  const port = await freePort()
  Object.assign(env, EXTRA_ENV, extraEnv, {
    PORT: String(port),
    // The logins-with-TOTP accounts' secrets are sealed under it (bench/seed-users.mjs).
    MFA_ENCRYPTION_KEY: BENCH_MFA_KEY,
    // --database-url is one empty database: a second instance gets a SQLite file of its own.
    DATABASE_URL:
      name === 'authgate' && opts['database-url']
        ? opts['database-url']
        : `sqlite:///${join(tmp, `${name}.db`)}`,
  })
  // The realistic mix: many accounts, each logging in now and then, throttling on by default.
  execFileSync(
    process.execPath,
    [
      join(ROOT, 'bench', 'seed-users.mjs'),
      env.DATABASE_URL,
      String(USERS),
      PASSWORD,
      // Only the main instance runs the logins with TOTP.
      String(name === 'authgate' ? TOTP_USERS : 0),
    ],
    {
      cwd: tmp,
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
  const child = startNode([join(ROOT, 'dist', 'cli', 'index.js'), 'serve'], {
    cwd: tmp,
    env,
    stdoutPath: join(tmp, `${name}.log`),
    stderrPath: join(tmp, `${name}.stderr`),
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/healthz`, child, 'AuthGate')
  return { child, url, env, cwd: tmp, logPath: join(tmp, `${name}.log`) }
}

/** AuthGate with METRICS_PORT set: the same GET / with a histogram observation per request. */
async function startAuthGateWithMetrics() {
  const metricsPort = await freePort()
  const server = await startAuthGate('authgate-metrics', { METRICS_PORT: String(metricsPort) })
  return { ...server, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` }
}

/** The GET / requests the metrics instance counted: proof that its metrics were on. */
async function countedGets(metricsUrl) {
  const text = await (await fetch(metricsUrl)).text()
  const line = text
    .split('\n')
    .find((l) =>
      l.startsWith('authgate_http_request_duration_seconds_count{route="/",method="GET",status="200"}'),
    )
  return line ? Number(line.split(' ').at(-1)) : 0
}

async function startBare() {
  const port = await freePort()
  const child = startNode([join(ROOT, 'bench', 'bare-server.mjs')], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdoutPath: join(tmp, 'bare.log'),
    stderrPath: join(tmp, 'bare.stderr'),
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/`, child, 'the bare server')
  return { child, url }
}

async function bearerToken(url) {
  const res = await fetch(`${url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: loginForm(),
  })
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`)
  return (await res.json()).access_token
}

function loginForm() {
  return new URLSearchParams({ username: USERNAME, password: PASSWORD }).toString()
}

let nextUser = 0
function nextLoginForm() {
  const i = nextUser++ % USERS
  return new URLSearchParams({
    username: i === 0 ? USERNAME : `${USERNAME}${i}`,
    password: PASSWORD,
  }).toString()
}

async function checkSameBody(url, headers) {
  const res = await fetch(`${url}/`, { headers })
  const body = await res.text()
  if (res.status !== 200 || body !== EXPECTED_BODY) {
    throw new Error(`GET ${url}/ answered ${res.status} ${body}, expected 200 ${EXPECTED_BODY}`)
  }
}

// ---- the measurements ---------------------------------------------------------------------------

// Anything that makes a figure doubtful; printed with the table and recorded with it.
const notes = []

function warn(what, result) {
  const p = problems(result)
  if (!p) return
  const codes = Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}x HTTP ${code}`)
  const text = `${what}: ${p}${codes.length > 0 ? ` (${codes.join(', ')})` : ''}`
  log(`  ! ${text}`)
  notes.push(text)
}

/** The commit measured, and whether the working tree had changes (the build includes them). */
function gitState() {
  try {
    const git = (...args) =>
      execFileSync('git', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString()
    const dirty = git('status', '--porcelain', '--untracked-files=no').trim() !== ''
    return `${git('rev-parse', '--short', 'HEAD').trim()}${dirty ? ' with uncommitted changes' : ''}`
  } catch {
    return 'unknown commit'
  }
}

/**
 * Runs `run` and measures the server's CPU µs (user + system, every thread) per request, and how
 * busy the server and this process (the load generator) were, as fractions of one core.
 */
async function measured(pid, run) {
  const before = cpuTimeOf(pid)
  const client = process.cpuUsage()
  const start = performance.now()
  const result = await run()
  const wallUs = (performance.now() - start) * 1000
  const clientUsed = process.cpuUsage(client)
  const after = cpuTimeOf(pid)
  const serverUs = before && after ? after.user + after.system - before.user - before.system : NaN
  const total = result.requests.total
  return {
    result,
    us: total > 0 ? serverUs / total : NaN,
    serverBusy: serverUs / wallUs,
    clientBusy: (clientUsed.user + clientUsed.system) / wallUs,
  }
}

// The load generator is one Node process: near one full core, it (not the server) sets the pace.
const CLIENT_BOUND = 0.9

async function throughput(servers, headers, headersOf = {}) {
  const names = Object.keys(servers)
  const best = Object.fromEntries(names.map((n) => [n, { rate: 0 }]))
  const cpu = Object.fromEntries(names.map((n) => [n, Number.POSITIVE_INFINITY]))
  for (let round = 0; round < ROUNDS; round++) {
    // Alternating order, so neither server always runs on a machine warmed by the other.
    const order = round % 2 === 0 ? names : [...names].reverse()
    for (const name of order) {
      const run = {
        url: `${servers[name].url}/`,
        headers: headersOf[name] ?? headers,
        connections: CONNECTIONS,
        pipelining: 1,
      }
      if (WARMUP > 0) await load({ ...run, duration: WARMUP })
      const m = await measured(servers[name].child.pid, () => load({ ...run, duration: DURATION }))
      const rate = okPerSecond(m.result)
      if (rate > best[name].rate) best[name] = { rate, clientBusy: m.clientBusy }
      cpu[name] = Math.min(cpu[name], m.us)
      log(
        `  GET / ${name.padEnd(9)} round ${round + 1}: ${int(rate)} req/s; server ${ms(m.us)} µs CPU/request, ` +
          `${pct(m.serverBusy)} busy; load generator ${pct(m.clientBusy)} busy`,
      )
      warn(`GET / ${name}`, m.result)
    }
  }
  return { best, cpu }
}

/** 4xx, 5xx, errors and timeouts: a scenario that expects 3xx answers (code exchanges) has those. */
function failures(result) {
  const out = []
  for (const code of ['4xx', '5xx']) if (result[code]) out.push(`${result[code]} ${code}`)
  if (result.errors) out.push(`${result.errors} errors`)
  if (result.timeouts) out.push(`${result.timeouts} timeouts`)
  return out.join(', ')
}

/**
 * One OpenID Connect scenario against AuthGate, alternating round by round with the bare GET /
 * (so the ratio compares runs minutes apart at most, on the same machine state).
 */
async function scenarioAgainstBare(name, spec, authgate, bare) {
  // autocannon takes a single request's path in its url; a sequence's, in each request.
  const { redirectsExpected, path = '', ...request } = spec
  const best = { rate: 0, bare: 0 }
  let us = Number.POSITIVE_INFINITY
  for (let round = 0; round < ROUNDS; round++) {
    const runs = [
      ['bare', { url: `${bare.url}/` }, bare.child.pid],
      [name, { url: `${authgate.url}${path}`, ...request }, authgate.child.pid],
    ]
    for (const [which, options, pid] of round % 2 === 0 ? runs : runs.reverse()) {
      const run = { ...options, connections: CONNECTIONS, pipelining: 1 }
      if (WARMUP > 0) await load({ ...run, duration: WARMUP })
      const m = await measured(pid, () => load({ ...run, duration: DURATION }))
      const rate = okPerSecond(m.result)
      if (which === 'bare') best.bare = Math.max(best.bare, rate)
      else {
        best.rate = Math.max(best.rate, rate)
        us = Math.min(us, m.us)
      }
      log(
        `  ${which.padEnd(18)} round ${round + 1}: ${int(rate)}/s; server ${ms(m.us)} µs CPU each, ` +
          `${pct(m.serverBusy)} busy; load generator ${pct(m.clientBusy)} busy`,
      )
      const bad = which !== 'bare' && redirectsExpected ? failures(m.result) : problems(m.result)
      if (bad) {
        log(`  ! ${which}: ${bad}`)
        notes.push(`${which}: ${bad}`)
      }
    }
  }
  return { ...best, us, ratio: best.rate / best.bare }
}

// autocannon drops its connections when a run ends, but the server still finishes the logins in
// flight, and the login throttle counts an attempt from its start until it succeeds: a new run
// started at once would briefly have twice the clients in flight. Real clients do not do that.
const LOGIN_DRAIN_MS = 1500

async function loginLoad(url, duration, onLatency) {
  const result = await load(
    {
      url: `${url}/auth/token`,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      // Each request logs in the next of the USERS accounts (benchuser, benchuser1, ...).
      requests: [{ setupRequest: (req) => ({ ...req, body: nextLoginForm() }) }],
      connections: LOGIN_CLIENTS,
      pipelining: 1,
      duration,
    },
    onLatency,
  )
  await sleep(LOGIN_DRAIN_MS)
  return result
}

async function logins(url) {
  if (WARMUP > 0) await loginLoad(url, WARMUP)
  const latencies = []
  const result = await loginLoad(url, DURATION, (t) => latencies.push(t))
  const rate = okPerSecond(result)
  const lat = percentiles(latencies)
  log(`  logins: ${rate.toFixed(1)}/s, latency p50 ${ms(lat.p50)} ms, p99 ${ms(lat.p99)} ms`)
  warn('logins', result)
  return { rate, latency: lat }
}

/**
 * Logins with TOTP: LOGIN_CLIENTS clients, each login two requests (the password grant's
 * mfa_required, then the code). The first request's 401 is expected, once per completed login.
 */
async function totpLogins(url) {
  const requests = totpLoginRequests(TOTP_USERS, PASSWORD)
  const run = (duration, onLatency) =>
    load(
      { url: `${url}/auth/token`, requests, connections: LOGIN_CLIENTS, pipelining: 1, duration },
      onLatency,
    )
  if (WARMUP > 0) await run(WARMUP)
  await sleep(LOGIN_DRAIN_MS)
  const latencies = []
  const result = await run(DURATION, (t) => latencies.push(t))
  await sleep(LOGIN_DRAIN_MS)
  const rate = okPerSecond(result)
  const lat = percentiles(latencies)
  log(
    `  logins with TOTP: ${rate.toFixed(1)}/s, request latency p50 ${ms(lat.p50)} ms, p99 ${ms(lat.p99)} ms`,
  )
  // One 401 (mfa_required) per login; a few more for the logins cut off when the run ended.
  const unexpected4xx = (result['4xx'] ?? 0) - (result['2xx'] ?? 0) - LOGIN_CLIENTS
  const bad = [
    ...(unexpected4xx > 0 ? [`${unexpected4xx} 4xx beyond the mfa_required steps`] : []),
    ...['5xx', 'errors', 'timeouts'].filter((k) => result[k]).map((k) => `${result[k]} ${k}`),
  ].join(', ')
  if (bad) {
    log(`  ! logins with TOTP: ${bad}`)
    notes.push(`logins with TOTP: ${bad}`)
  }
  return { rate, latency: lat }
}

async function getLatency(url, headers) {
  const latencies = []
  const result = await load(
    {
      url: `${url}/`,
      headers,
      connections: GET_CONNECTIONS,
      pipelining: 1,
      duration: DURATION,
      ...(GET_RATE > 0 ? { overallRate: GET_RATE, ignoreCoordinatedOmission: true } : {}),
    },
    (t) => latencies.push(t),
  )
  warn(`GET / latency ${url}`, result)
  return { ...percentiles(latencies), rate: okPerSecond(result) }
}

/** GET / latency while LOGIN_CLIENTS log in without pause; the logins start a second earlier. */
async function latencyUnderLogins(url, headers) {
  const logins = loginLoad(url, DURATION + 2)
  await sleep(1000)
  const get = await getLatency(url, headers)
  const loginResult = await logins
  warn('logins during the latency run', loginResult)
  return { get, loginRate: okPerSecond(loginResult) }
}

// ---- main ---------------------------------------------------------------------------------------

async function main() {
  tmp = mkdtempSync(join(tmpdir(), 'authgate-bench-'))
  const startedAt = new Date()
  const loadAtStart = loadavg()[0]
  const commit = gitState()
  const cpuModel = cpus()[0]?.model?.trim() ?? 'unknown CPU'
  const autocannonVersion = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8'),
  ).version
  const perfEnv = [
    ...PERF_ENV.filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`),
    ...Object.entries(EXTRA_ENV).map(([k, v]) => `${k}=${v}`),
  ]
  log(
    `AuthGate bench (${commit}): node ${process.version}, ${cpus().length} CPUs (${cpuModel}), ` +
      `load average ${loadAtStart.toFixed(2)}`,
  )
  if (perfEnv.length > 0) log(`non-default environment: ${perfEnv.join(' ')}`)

  const authgate = await startAuthGate()
  const bare = await startBare()
  const metrics = opts['no-metrics'] ? undefined : await startAuthGateWithMetrics()
  log(
    `AuthGate pid ${authgate.child.pid} at ${authgate.url}; bare Fastify pid ${bare.child.pid} at ${bare.url}` +
      (metrics ? `; AuthGate with METRICS_PORT pid ${metrics.child.pid} at ${metrics.url}` : ''),
  )
  const rss = rssSampler(authgate.child.pid)

  const token = await bearerToken(authgate.url)
  const headers = { authorization: `Bearer ${token}` }
  await checkSameBody(authgate.url, headers)
  await checkSameBody(bare.url, headers)
  // Its own database, so its own token (the same user, seeded alike).
  const metricsHeaders = metrics ? { authorization: `Bearer ${await bearerToken(metrics.url)}` } : undefined
  if (metrics) await checkSameBody(metrics.url, metricsHeaders)

  rss.phase('GET / throughput')
  log(`\nGET / throughput: ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s, ${ROUNDS} rounds`)
  const { best, cpu } = await throughput({ authgate, bare }, headers)
  let withMetrics
  if (metrics) {
    // Against the same AuthGate without metrics, alternating, like the pair above.
    const paired = await throughput({ authgate, metrics }, headers, { metrics: metricsHeaders })
    withMetrics = {
      off: paired.best.authgate,
      on: paired.best.metrics,
      cpuOff: paired.cpu.authgate,
      cpuOn: paired.cpu.metrics,
    }
    const counted = await countedGets(metrics.metricsUrl)
    if (counted === 0) throw new Error('the METRICS_PORT instance counted no GET /: its metrics are not on')
    log(`  the METRICS_PORT instance's histogram counted ${int(counted)} GET / requests`)
    await stopProcess(metrics.child)
  }

  rss.phase('logins')
  log(`\nLogins: ${LOGIN_CLIENTS} clients, ${WARMUP} s warm-up + ${DURATION} s`)
  const login = await logins(authgate.url)

  rss.phase('logins with TOTP')
  log(
    `\nLogins with TOTP: ${LOGIN_CLIENTS} clients, ${TOTP_USERS} accounts, ${WARMUP} s warm-up + ${DURATION} s`,
  )
  const totpLogin = await totpLogins(authgate.url)

  rss.phase('GET / latency')
  const rateText = GET_RATE > 0 ? `${GET_RATE} req/s` : 'unthrottled'
  log(`\nGET / latency: ${GET_CONNECTIONS} connections, ${rateText}, ${DURATION} s each`)
  const bareLatency = await getLatency(bare.url, headers)
  log(`  bare, alone:                p99 ${ms(bareLatency.p99)} ms at ${int(bareLatency.rate)} req/s`)
  const aloneLatency = await getLatency(authgate.url, headers)
  log(`  AuthGate, alone:            p99 ${ms(aloneLatency.p99)} ms at ${int(aloneLatency.rate)} req/s`)
  rss.phase('GET / latency under logins')
  const loaded = await latencyUnderLogins(authgate.url, headers)
  log(
    `  AuthGate, under logins:     p99 ${ms(loaded.get.p99)} ms at ${int(loaded.get.rate)} req/s, ` +
      `${loaded.loginRate.toFixed(1)} logins/s`,
  )

  let oidc
  if (!opts['no-oidc']) {
    rss.phase('OpenID Connect')
    log(
      `\nOpenID Connect: ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s, ${ROUNDS} rounds, each beside the bare GET /`,
    )
    const usernames = Array.from({ length: USERS }, (_, i) => (i === 0 ? USERNAME : `${USERNAME}${i}`))
    const prepared = await prepareOidc({ root: ROOT, server: authgate, usernames, password: PASSWORD })
    const specs = oidcScenarios(prepared)
    oidc = {}
    for (const [name, spec] of Object.entries(specs)) {
      oidc[name] = await scenarioAgainstBare(name, spec, authgate, bare)
    }
  }

  const memory = memoryOf(authgate.child.pid)
  const bareMemory = memoryOf(bare.child.pid)
  const phasePeaks = rss.stop()
  await stopProcess(authgate.child)
  await stopProcess(bare.child)
  const logFile = countLines(authgate.logPath)

  const ratio = best.authgate.rate / best.bare.rate
  const cpuRatio = cpu.bare / cpu.authgate
  if (best.bare.clientBusy >= CLIENT_BOUND) {
    notes.push(
      `the bare route's best run kept the load generator ${pct(best.bare.clientBusy)} busy, so it measured ` +
        `the client as much as the server: the req/s ratio flatters AuthGate; the CPU-per-request ratio ` +
        `(${cpuRatio.toFixed(2)}x) does not depend on the client`,
    )
  }
  const peakRss = Math.max(memory?.hwmMb ?? Number.NaN, ...phasePeaks.values())
  const rows = [
    {
      metric: `GET / throughput, req/s (${CONNECTIONS} conns, best of ${ROUNDS})`,
      authgate: int(best.authgate.rate),
      bare: int(best.bare.rate),
      target: `${ratio.toFixed(2)}x / >= ${TARGETS.ratio.toFixed(2)}x`,
      pass: ratio >= TARGETS.ratio,
    },
    {
      metric: 'Server CPU per GET /, µs (user+sys, min)',
      authgate: ms(cpu.authgate),
      bare: ms(cpu.bare),
      target: `${cpuRatio.toFixed(2)}x`,
    },
    ...(withMetrics
      ? [
          {
            metric: `GET / throughput with METRICS_PORT, req/s (vs. the same without, best of ${ROUNDS})`,
            authgate: `${int(withMetrics.on.rate)} vs ${int(withMetrics.off.rate)}`,
            target: `${(withMetrics.on.rate / withMetrics.off.rate).toFixed(2)}x`,
          },
          {
            metric: 'Server CPU per GET / with METRICS_PORT, µs (vs. without)',
            authgate: `${ms(withMetrics.cpuOn)} vs ${ms(withMetrics.cpuOff)}`,
            target: `${(withMetrics.cpuOn / withMetrics.cpuOff).toFixed(2)}x`,
          },
        ]
      : []),
    {
      metric: `Logins/s (${LOGIN_CLIENTS} clients)`,
      authgate: login.rate.toFixed(1),
      target: `>= ${TARGETS.loginsPerSecond}/s`,
      pass: login.rate >= TARGETS.loginsPerSecond,
    },
    {
      metric: 'Login latency p50 / p99, ms',
      authgate: `${ms(login.latency.p50)} / ${ms(login.latency.p99)}`,
    },
    {
      metric: `Logins with TOTP/s (${LOGIN_CLIENTS} clients, password then code)`,
      authgate: totpLogin.rate.toFixed(1),
      target: `${(totpLogin.rate / login.rate).toFixed(2)}x of password logins`,
    },
    {
      metric: 'Logins with TOTP: request latency p50 / p99, ms',
      authgate: `${ms(totpLogin.latency.p50)} / ${ms(totpLogin.latency.p99)}`,
    },
    {
      metric: 'GET / p50 under login load, ms',
      authgate: ms(loaded.get.p50),
      bare: ms(bareLatency.p50),
    },
    { metric: 'GET / p90 under login load, ms', authgate: ms(loaded.get.p90), bare: ms(bareLatency.p90) },
    {
      metric: 'GET / p99 under login load, ms',
      authgate: ms(loaded.get.p99),
      bare: ms(bareLatency.p99),
      target: `<= ${TARGETS.p99Ms} ms`,
      pass: loaded.get.p99 <= TARGETS.p99Ms,
    },
    { metric: 'GET / max under login load, ms', authgate: ms(loaded.get.max), bare: ms(bareLatency.max) },
    {
      metric: 'GET / p99 without login load, ms',
      authgate: ms(aloneLatency.p99),
      bare: ms(bareLatency.p99),
    },
    ...(oidc
      ? [
          {
            metric: `client_credentials grants/s (${CONNECTIONS} conns)`,
            authgate: int(oidc.client_credentials.rate),
            bare: int(oidc.client_credentials.bare),
            target: `>= ${int(TARGETS.clientCredentialsPerSecond)}/s`,
            pass: oidc.client_credentials.rate >= TARGETS.clientCredentialsPerSecond,
          },
          {
            metric: 'Introspections/s (a user token, RFC 7662)',
            authgate: int(oidc.introspection.rate),
            bare: int(oidc.introspection.bare),
            target: `${oidc.introspection.ratio.toFixed(2)}x / >= ${TARGETS.introspectionRatio.toFixed(2)}x`,
            pass: oidc.introspection.ratio >= TARGETS.introspectionRatio,
          },
          {
            metric: 'UserInfo requests/s',
            authgate: int(oidc.userinfo.rate),
            bare: int(oidc.userinfo.bare),
            target: `${oidc.userinfo.ratio.toFixed(2)}x / >= ${TARGETS.userinfoRatio.toFixed(2)}x`,
            pass: oidc.userinfo.ratio >= TARGETS.userinfoRatio,
          },
          {
            metric: 'Code exchanges/s (authorize with a browser session + token)',
            authgate: int(oidc['code exchange'].rate),
            bare: int(oidc['code exchange'].bare),
            target: `>= ${TARGETS.codeExchangesPerSecond}/s`,
            pass: oidc['code exchange'].rate >= TARGETS.codeExchangesPerSecond,
          },
          {
            metric: 'Server CPU, µs: grant / introspection / UserInfo / exchange',
            authgate: [oidc.client_credentials, oidc.introspection, oidc.userinfo, oidc['code exchange']]
              .map((o) => ms(o.us))
              .join(' / '),
          },
        ]
      : []),
    {
      metric: 'Peak RSS, MB (VmHWM)',
      authgate: mb(peakRss),
      bare: mb(bareMemory?.hwmMb),
      target: `<= ${TARGETS.rssMb} MB`,
      pass: Number.isFinite(peakRss) ? peakRss <= TARGETS.rssMb : undefined,
    },
  ]

  log(`\n${consoleTable(rows)}\n`)
  log(
    `GET / during the latency runs: ${rateText}; bare ${int(bareLatency.rate)}, AuthGate alone ${int(aloneLatency.rate)}, ` +
      `under logins ${int(loaded.get.rate)} req/s (with ${loaded.loginRate.toFixed(1)} logins/s).`,
  )
  log(`AuthGate RSS peak by phase (MB): ${[...phasePeaks].map(([p, v]) => `${p} ${mb(v)}`).join(', ')}`)
  log(`AuthGate wrote ${int(logFile.lines)} log lines (${(logFile.bytes / 2 ** 20).toFixed(1)} MiB).`)
  for (const note of notes) log(`Note: ${note}.`)

  const failed = rows.filter((r) => r.pass === false).length
  const checked = rows.filter((r) => r.pass !== undefined).length
  if (opts['no-docs'] || Object.keys(EXTRA_ENV).length > 0 || opts['database-url']) {
    log('Results not recorded (--no-docs or --env).')
  } else {
    const when = `${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`
    const machine = `a shared ${cpus().length}-vCPU Linux VM (${cpuModel}, ${Math.round(totalmem() / 2 ** 30)} GB RAM)`
    const section = [
      `### ${when}`,
      '',
      `Commit ${commit}. Node ${process.version}, ${cpus().length} CPUs (${cpuModel}), Linux ${release()}, ` +
        `load average ${loadAtStart.toFixed(2)} at start; autocannon ${autocannonVersion}. ` +
        `${DURATION} s runs after ${WARMUP} s warm-ups; GET / latency runs with ${GET_CONNECTIONS} connections, ${rateText}.` +
        (perfEnv.length > 0 ? ` Environment: \`${perfEnv.join(' ')}\`.` : ''),
      '',
      markdownTable(rows),
      '',
      `AuthGate wrote ${int(logFile.lines)} JSON log lines (${(logFile.bytes / 2 ** 20).toFixed(1)} MiB) during the run. ` +
        `GET / rate in the latency runs: bare ${int(bareLatency.rate)}, AuthGate alone ${int(aloneLatency.rate)}, ` +
        `under logins ${int(loaded.get.rate)} req/s. ${checked - failed} of ${checked} targets met.`,
      ...(notes.length > 0 ? ['', ...notes.map((n) => `- Note: ${n}.`)] : []),
    ].join('\n')
    const historyLine =
      `${when}, ${commit}, Node ${process.version}, ${cpus().length} CPUs: GET / ${ratio.toFixed(2)}x ` +
      `(${int(best.authgate.rate)} vs ${int(best.bare.rate)} req/s; CPU/request ${cpuRatio.toFixed(2)}x), ` +
      (withMetrics
        ? `with metrics ${int(withMetrics.on.rate)} vs ${int(withMetrics.off.rate)} req/s ` +
          `(CPU/request ${(withMetrics.cpuOn / withMetrics.cpuOff).toFixed(2)}x), `
        : '') +
      `${login.rate.toFixed(1)} logins/s, ${totpLogin.rate.toFixed(1)} with TOTP, ` +
      `p99 under logins ${ms(loaded.get.p99)} ms, ` +
      (oidc
        ? `client_credentials ${int(oidc.client_credentials.rate)}/s, introspection ${oidc.introspection.ratio.toFixed(2)}x, ` +
          `UserInfo ${oidc.userinfo.ratio.toFixed(2)}x, code exchanges ${int(oidc['code exchange'].rate)}/s, `
        : '') +
      `peak RSS ${mb(peakRss)} MB; ${checked - failed}/${checked} targets met`
    updateDocs(opts.docs, { section, historyLine, machine })
    log(`Recorded in ${opts.docs}.`)
  }
  if (opts.strict && failed > 0) process.exitCode = 1
}

try {
  await main()
} catch (err) {
  console.error(`\nbench failed: ${err instanceof Error ? err.message : err}`)
  process.exitCode = 1
} finally {
  await Promise.all(children.map((child) => stopProcess(child)))
  cleanupNow()
}
