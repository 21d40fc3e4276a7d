// One background job on an interval: every polling, reloading, pruning and probing loop of the
// server goes through here, so each is unref'd (it never holds the process open), reports its
// failures instead of leaving an unhandled rejection (which ends a Node process), and stops.
//
// Ticks may overlap: none of today's jobs needs them not to. The key ring and revocation view
// reloads are coalesced (lib/coalesce.ts), audit retention runs on the writer's own chain, the
// probes time out before their next tick, and a throttle prune or an issuer read is one query
// bounded by the statement timeout, far shorter than its interval.

export interface Periodic {
  /** Clears the interval; a tick already running finishes, and its failure is still reported. */
  stop(): void
}

/**
 * Runs `job` every `everyMs`, first after one interval. A job that throws, or whose promise
 * rejects, is reported to `onError`, and runs again at the next tick.
 */
export function every(everyMs: number, job: () => unknown, onError: (err: unknown) => void): Periodic {
  const report = (err: unknown) => {
    try {
      onError(err)
    } catch {
      // A broken reporter must not turn a failed tick into an unhandled rejection.
    }
  }
  const tick = () => {
    try {
      Promise.resolve(job()).catch(report)
    } catch (err) {
      report(err)
    }
  }
  const timer = setInterval(tick, everyMs)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
