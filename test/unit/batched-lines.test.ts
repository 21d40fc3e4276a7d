// The request log's destination (src/lib/batched-lines.ts), on a real file.
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { type BatchedLines, batchedLines } from '../../src/lib/batched-lines.js'

const open: { fd: number; lines: BatchedLines }[] = []

function logFile(options: { flushAtBytes: number; maxWriteBytes: number; flushEveryMs: number }) {
  const path = join(mkdtempSync(join(tmpdir(), 'authgate-lines-')), 'log')
  const fd = openSync(path, 'w')
  const lines = batchedLines(fd, options)
  open.push({ fd, lines })
  return { lines, read: () => readFileSync(path, 'utf8') }
}

afterEach(() => {
  for (const { fd, lines } of open.splice(0)) {
    lines.close()
    closeSync(fd)
  }
})

describe('batched lines', () => {
  it('waits for flushAtBytes, then writes every waiting line, in order', () => {
    const { lines, read } = logFile({ flushAtBytes: 100, maxWriteBytes: 4096, flushEveryMs: 60_000 })
    const line = (i: number) => `{"n":${i},"msg":"${'x'.repeat(20)}"}\n` // 33-34 bytes
    lines.write(line(1))
    lines.write(line(2))
    expect(read()).toBe('')
    lines.write(line(3)) // 100 bytes or more now
    expect(read()).toBe(line(1) + line(2) + line(3))
  })

  it('counts bytes, not characters: multi-byte lines reach the threshold sooner', () => {
    const { lines, read } = logFile({ flushAtBytes: 30, maxWriteBytes: 4096, flushEveryMs: 60_000 })
    lines.write('ééééééééééééééé\n') // 15 characters, 31 bytes
    expect(read()).toBe('ééééééééééééééé\n')
  })

  it('writes what waits before a line that would take a write past maxWriteBytes', () => {
    const { lines, read } = logFile({ flushAtBytes: 1000, maxWriteBytes: 50, flushEveryMs: 60_000 })
    lines.write(`${'a'.repeat(29)}\n`)
    expect(read()).toBe('')
    lines.write(`${'b'.repeat(29)}\n`) // 60 bytes together: the first goes alone
    expect(read()).toBe(`${'a'.repeat(29)}\n`)
    lines.flushSync()
    expect(read()).toBe(`${'a'.repeat(29)}\n${'b'.repeat(29)}\n`)
  })

  it('writes a waiting line within flushEveryMs, and the rest on close', async () => {
    const { lines, read } = logFile({ flushAtBytes: 1 << 20, maxWriteBytes: 1 << 20, flushEveryMs: 20 })
    lines.write('first\n')
    await expect.poll(read, { timeout: 2_000, interval: 5 }).toBe('first\n')
    lines.write('last\n')
    lines.close()
    expect(read()).toBe('first\nlast\n')
  })
})
