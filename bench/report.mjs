// The results of bench/run.mjs: a console table, and docs/benchmarks.md (Latest + History).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

const LATEST_START = '<!-- bench:latest:start -->'
const LATEST_END = '<!-- bench:latest:end -->'
const HISTORY_START = '<!-- bench:history:start -->'
const HISTORY_END = '<!-- bench:history:end -->'
const HISTORY_LINE = /<!-- history-line: (.*) -->/
export const HISTORY_MAX = 10

const HEADERS = ['Metric', 'AuthGate', 'Bare Fastify', 'Ratio / target', 'Result']

function verdict(pass) {
  if (pass === undefined) return 'info'
  return pass ? 'PASS' : 'FAIL'
}

function cells(row) {
  return [row.metric, row.authgate, row.bare ?? '-', row.target ?? '-', verdict(row.pass)]
}

export function consoleTable(rows) {
  const lines = [HEADERS, ...rows.map(cells)]
  const widths = HEADERS.map((_, i) => Math.max(...lines.map((l) => l[i].length)))
  const fmt = (l) => l.map((c, i) => c.padEnd(widths[i])).join(' | ')
  const rule = widths.map((w) => '-'.repeat(w)).join('-+-')
  return [fmt(HEADERS), rule, ...rows.map((r) => fmt(cells(r)))].join('\n')
}

export function markdownTable(rows) {
  const fmt = (l) => `| ${l.join(' | ')} |`
  return [fmt(HEADERS), fmt(HEADERS.map(() => '---')), ...rows.map((r) => fmt(cells(r)))].join('\n')
}

function intro(machine) {
  return `# Benchmarks

\`npm run bench\` builds the server and runs \`bench/run.mjs\` (under two minutes; \`--help\` lists the
options). It starts AuthGate as in production, \`node dist/cli/index.js serve\` with the default
configuration (log level \`info\`, one JSON line per request written to a file), on a fresh SQLite
file in a temporary directory, and next to it a bare Fastify server (\`bench/bare-server.mjs\`)
whose \`GET /\` returns the same JSON with no authentication and no logging. The load generator is
autocannon, inside the bench process. It measures:

- **GET / throughput**: requests per second with \`Authorization: Bearer <token>\`, 50 connections,
  pipelining 1, after a warm-up; AuthGate and the bare route alternate, twice each, and the best run
  of each counts. Target: AuthGate at least 0.7x the bare route. Alongside, the **server CPU time
  per request** (user + system, all threads, from \`/proc\`): it does not depend on how fast the load
  generator is, so its ratio is the steadier measure of what AuthGate's work costs.
- **Logins per second**: 8 concurrent clients posting the OAuth2 password form to \`/auth/token\`
  (argon2id verification, m=19 MiB, t=2, p=1). Target: at least 30/s (the seed manages about 3/s).
  Login runs are 1.5 s apart, so the logins a finished run left in flight complete before the
  next run starts (the throttle counts an attempt as a possible failure until it succeeds).
- **GET / latency under login load**: p50/p90/p99/max of \`GET /\` on 10 connections while the 8
  clients log in without pause. The bare column is the same GET load on the bare route, without
  logins. Target: p99 at most 25 ms.
- **Peak RSS** of the AuthGate node process over the whole run (\`VmHWM\` from \`/proc\`). Target:
  at most 300 MB.

The reference machine is ${machine}. It is shared with other work, so absolute numbers drift by
tens of percent between runs, and even within one; compare the ratios against the bare route
measured in the same run, and rerun before trusting a single figure. When the load generator
itself runs out of CPU the req/s ratio flatters AuthGate; the run then says so in a note.

## Latest

${LATEST_START}
${LATEST_END}

## History

Older runs, most recent first (at most ${HISTORY_MAX}).

${HISTORY_START}
${HISTORY_END}
`
}

function between(text, start, end) {
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i === -1 || j === -1 || j < i) return undefined
  return {
    before: text.slice(0, i + start.length),
    inner: text.slice(i + start.length, j),
    after: text.slice(j),
  }
}

/**
 * Puts this run under "Latest" and moves the previous latest run's one-line summary to the top of
 * "History", keeping at most HISTORY_MAX lines there. Creates the file when it is missing.
 */
export function updateDocs(path, { section, historyLine, machine }) {
  let text = existsSync(path) ? readFileSync(path, 'utf8') : intro(machine)
  if (!between(text, LATEST_START, LATEST_END) || !between(text, HISTORY_START, HISTORY_END)) {
    throw new Error(`${path} lacks the bench markers; restore them or delete the file to recreate it`)
  }
  const latest = between(text, LATEST_START, LATEST_END)
  const previous = HISTORY_LINE.exec(latest.inner)?.[1]
  text = `${latest.before}\n${section}\n<!-- history-line: ${historyLine} -->\n${latest.after}`

  const history = between(text, HISTORY_START, HISTORY_END)
  const lines = history.inner.split('\n').filter((l) => l.startsWith('- '))
  if (previous) lines.unshift(`- ${previous}`)
  const kept = lines.slice(0, HISTORY_MAX)
  text = `${history.before}\n${kept.length > 0 ? `${kept.join('\n')}\n` : ''}${history.after}`

  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
}
