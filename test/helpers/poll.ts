// Waiting for a condition another process makes true, when the time it takes is what is measured
// (a revocation reaching the other instance, a worker coming back). Where only the outcome
// matters, tests use expect.poll or vi.waitFor instead.
import { setTimeout as sleep } from 'node:timers/promises'

/** Milliseconds until `check` holds, checking every `everyMs`; throws after `limitMs`. */
export async function msUntil(
  check: () => boolean | Promise<boolean>,
  limitMs = 5_000,
  everyMs = 10,
): Promise<number> {
  const start = performance.now()
  while (!(await check())) {
    if (performance.now() - start > limitMs) throw new Error(`not true after ${limitMs} ms`)
    await sleep(everyMs)
  }
  return performance.now() - start
}
