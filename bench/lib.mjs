// Helpers for bench/run.mjs: child processes, readiness, /proc memory, load runs, statistics.
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts `node <args>` with stdout and stderr written to files (so the child really does its
 * output work, as in production). Returns the child, whose pid is node's own (no npm, no shell).
 */
export function startNode(args, { cwd, env, stdoutPath, stderrPath }) {
  const out = openSync(stdoutPath, 'w')
  const err = openSync(stderrPath, 'w')
  try {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', out, err] })
    child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    child.stderrPath = stderrPath
    return child
  } finally {
    closeSync(out)
    closeSync(err)
  }
}

export function isRunning(child) {
  return child.exitCode === null && child.signalCode === null
}

function tail(path, lines = 20) {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/** Polls `url` until it answers 200; fails early when the child exits. */
export async function waitForHttp(url, child, name, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!isRunning(child)) {
      throw new Error(
        `${name} exited (code ${child.exitCode}) before it was ready:\n${tail(child.stderrPath)}`,
      )
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  throw new Error(`${name} was not ready at ${url} after ${timeoutMs} ms:\n${tail(child.stderrPath)}`)
}

/** SIGTERM (the server's graceful close), then SIGKILL after `graceMs`. */
export async function stopProcess(child, graceMs = 5000) {
  if (!isRunning(child)) return
  child.kill('SIGTERM')
  const timer = sleep(graceMs).then(() => 'timeout')
  if ((await Promise.race([child.exited, timer])) === 'timeout' && isRunning(child)) {
    child.kill('SIGKILL')
    await child.exited
  }
}

/** `pid` and its descendants (a WORKERS primary and its workers), from /proc; just `pid` off Linux. */
function processTree(pid) {
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) {
    try {
      const children = readFileSync(`/proc/${tree[i]}/task/${tree[i]}/children`, 'utf8').trim()
      if (children) tree.push(...children.split(' ').map(Number))
    } catch {
      // gone, or not Linux
    }
  }
  return tree
}

/**
 * VmRSS and VmHWM (peak RSS) in MiB of a process and its descendants (summed: with WORKERS, the
 * primary and every worker), from /proc; undefined off Linux or once it exited.
 */
export function memoryOf(pid) {
  let total
  for (const p of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8')
      const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1])
      total ??= { rssMb: 0, hwmMb: 0 }
      total.rssMb += kib('VmRSS') / 1024
      total.hwmMb += kib('VmHWM') / 1024
    } catch {
      // exited meanwhile
    }
  }
  return total
}

let clockTicks
/**
 * CPU time (user, system; all threads) a process and its descendants have used so far, in µs;
 * undefined off Linux.
 */
export function cpuTimeOf(pid) {
  let total
  for (const p of processTree(pid)) {
    const t = cpuTimeOfOne(p)
    if (!t) continue
    total ??= { user: 0, system: 0 }
    total.user += t.user
    total.system += t.system
  }
  return total
}

function cpuTimeOfOne(pid) {
  try {
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100
  } catch {
    clockTicks = 100
  }
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const tick = 1e6 / clockTicks
    return { user: Number(fields[11]) * tick, system: Number(fields[12]) * tick }
  } catch {
    return undefined
  }
}

/**
 * Polls a process's RSS every `everyMs`, keeping the maximum per named phase. VmHWM (read at the
 * end) is the authoritative peak; the poll says in which phase the memory went up.
 */
export function rssSampler(pid, everyMs = 200) {
  const peaks = new Map()
  let phase = 'start'
  const sample = () => {
    const m = memoryOf(pid)
    if (m) peaks.set(phase, Math.max(peaks.get(phase) ?? 0, m.rssMb))
  }
  const timer = setInterval(sample, everyMs)
  timer.unref()
  return {
    phase(name) {
      sample()
      phase = name
      sample()
    },
    stop() {
      sample()
      clearInterval(timer)
      return peaks
    },
  }
}

/**
 * One autocannon run. `onLatency(ms)` receives every 2xx response time with sub-millisecond
 * precision (autocannon's own histogram has 1 ms buckets).
 */
export function load(options, onLatency) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ timeout: 10, ...options }, (err, result) => {
      if (err) reject(err)
      else resolve(result)
    })
    if (onLatency) {
      instance.on('response', (_client, statusCode, _bytes, ms) => {
        if (statusCode >= 200 && statusCode < 300) onLatency(ms)
      })
    }
  })
}

/** Successful responses per second of an autocannon result. */
export function okPerSecond(result) {
  return result['2xx'] / result.duration
}

/** Anything but clean 2xx answers, as a short string; empty when the run was clean. */
export function problems(result) {
  const out = []
  if (result.non2xx) out.push(`${result.non2xx} non-2xx`)
  if (result.errors) out.push(`${result.errors} errors`)
  if (result.timeouts) out.push(`${result.timeouts} timeouts`)
  if (result.mismatches) out.push(`${result.mismatches} body mismatches`)
  return out.join(', ')
}

/** Nearest-rank percentiles of a list of numbers. */
export function percentiles(values, ps = [50, 90, 99]) {
  const sorted = Float64Array.from(values).sort()
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
  const out = { count: sorted.length, max: sorted[sorted.length - 1] ?? Number.NaN }
  for (const p of ps) out[`p${p}`] = sorted.length > 0 ? at(p) : Number.NaN
  return out
}

/** Lines and bytes of a file (the server's log), without holding it all as a string. */
export function countLines(path) {
  try {
    const buffer = readFileSync(path)
    let lines = 0
    for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) lines++
    return { lines, bytes: buffer.length }
  } catch {
    return { lines: 0, bytes: 0 }
  }
}
