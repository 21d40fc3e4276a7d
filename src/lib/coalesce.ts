// One run at a time of a refresh-like task; callers arriving during a run share one more run after
// it, so every caller sees a result at least as new as its call (a run already under way may have
// read before the change that made the caller ask).
export function coalesced(run: () => Promise<void>): () => Promise<void> {
  let current: Promise<void> | undefined
  let next: Promise<void> | undefined
  const trigger = (): Promise<void> => {
    if (!current) {
      current = run().finally(() => {
        current = undefined
      })
      return current
    }
    next ??= current
      .catch(() => {})
      .then(() => {
        next = undefined
        return trigger()
      })
    return next
  }
  return trigger
}

/**
 * Reads by key, batched: the callers asking for one key within one turn of the event loop share
 * one read, started once they have all called (setImmediate), so each of them sees everything
 * committed before its call; a caller arriving once the read has started gets the next one.
 */
export function batchedByKey<V>(read: (key: string) => Promise<V>): (key: string) => Promise<V> {
  const waiting = new Map<string, Promise<V>>()
  return (key) => {
    let shared = waiting.get(key)
    if (!shared) {
      shared = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        waiting.delete(key)
        return read(key)
      })
      waiting.set(key, shared)
    }
    return shared
  }
}
