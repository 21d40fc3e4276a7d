// isDatabaseUnavailable: which driver errors mean "the database cannot be reached" or "is locked
// for now" (a 503), and which are ordinary failed queries (still a 500, or handled where they happen).
import { describe, expect, it } from 'vitest'
import { isDatabaseUnavailable } from '../../src/storage/database.js'

function coded(code: string, message = 'boom'): Error {
  return Object.assign(new Error(message), { code })
}

describe('isDatabaseUnavailable', () => {
  it.each([
    ['a refused connection', coded('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ['a reset connection', coded('ECONNRESET', 'read ECONNRESET')],
    ['an administrator shutdown', coded('57P01', 'terminating connection due to administrator command')],
    ['a server starting up', coded('57P03', 'the database system is starting up')],
    ['a connection exception (class 08)', coded('08006', 'connection failure')],
    ['too many connections', coded('53300', 'sorry, too many clients already')],
    ['a lost connection', new Error('Connection terminated unexpectedly')],
    ['a connect timeout', new Error('Connection terminated due to connection timeout')],
    ['a pool wait timeout', new Error('timeout exceeded when trying to connect')],
    ['a broken client', new Error('Client has encountered a connection error and is not queryable')],
    ['a connection that stopped answering (query_timeout)', new Error('Query read timeout')],
    ['a SQLite file locked past busy_timeout', coded('SQLITE_BUSY', 'database is locked')],
    ['a SQLite file being recovered', coded('SQLITE_BUSY_RECOVERY', 'database is locked')],
    ['several refused addresses', new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')])],
    ['a wrapped cause', new Error('query failed', { cause: coded('ECONNRESET') })],
  ])('is true for %s', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true)
  })

  it.each([
    ['a unique violation', coded('23505', 'duplicate key value violates unique constraint')],
    ['a syntax error', coded('42601', 'syntax error at or near "selec"')],
    ['a statement timeout', coded('57014', 'canceling statement due to statement timeout')],
    ['a SQLite lock conflict within one connection', coded('SQLITE_LOCKED', 'database table is locked')],
    ['a message that only starts like a query timeout', new Error('Query read timeout: no, a 500')],
    ['a plain error', new Error('something else')],
    ['not an error', { code: 'ECONNREFUSED' }],
    ['nothing', undefined],
  ])('is false for %s', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false)
  })
})
