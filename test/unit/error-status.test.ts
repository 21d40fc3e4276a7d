// The error-status map: every code clients may see answers with an error status of its own.
import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../../src/domain/errors.js'
import { ERROR_STATUS } from '../../src/http/plugins/errors.js'

describe('ERROR_STATUS', () => {
  it.each(Object.values(ErrorCode))('maps %s to a 4xx or 5xx status', (code) => {
    const status: unknown = (ERROR_STATUS as Record<string, unknown>)[code]
    expect(Number.isInteger(status)).toBe(true)
    expect(status).toBeGreaterThanOrEqual(400)
    expect(status).toBeLessThan(600)
  })

  it('maps no code that is not in the registry', () => {
    expect(Object.keys(ERROR_STATUS).sort()).toEqual(Object.values(ErrorCode).sort())
  })
})
