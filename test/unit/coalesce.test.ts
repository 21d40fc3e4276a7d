// batchedByKey (lib/coalesce.ts): callers of one turn share a read, and no caller is ever handed
// a read that started before it called (a secret rotated before an authentication is seen by it).
import { describe, expect, it } from 'vitest'
import { batchedByKey } from '../../src/lib/coalesce.js'

const turn = () => new Promise((resolve) => setImmediate(resolve))

describe('batchedByKey', () => {
  it('one read per key for the callers of one turn of the event loop', async () => {
    const reads: string[] = []
    const read = batchedByKey(async (key) => {
      reads.push(key)
      return `${key}@${reads.length}`
    })
    const answers = await Promise.all([read('a'), read('a'), read('b'), read('a')])
    expect(reads.sort()).toEqual(['a', 'b'])
    expect(answers[0]).toBe(answers[1])
    expect(answers[0]).toBe(answers[3])
  })

  it('a caller arriving after the read started gets a read of its own, which sees what changed', async () => {
    let value = 'old'
    let started!: () => void
    const startedReading = new Promise<void>((resolve) => {
      started = resolve
    })
    let finish!: () => void
    const gate = new Promise<void>((resolve) => {
      finish = resolve
    })
    const read = batchedByKey(async () => {
      const seen = value
      started()
      await gate
      return seen
    })
    const first = read('k')
    await startedReading
    // The change commits while the first read is under way: a later caller must not share it.
    value = 'new'
    const second = read('k')
    finish()
    expect(await first).toBe('old')
    expect(await second).toBe('new')
  })

  it('reads again in a later turn, and passes a failure to the callers that shared it', async () => {
    let n = 0
    const read = batchedByKey(async () => {
      n++
      if (n === 1) throw new Error('database away')
      return n
    })
    const failed = [read('k'), read('k')]
    for (const p of failed) await expect(p).rejects.toThrow('database away')
    await turn()
    expect(await read('k')).toBe(2)
  })
})
