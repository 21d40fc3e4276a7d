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
