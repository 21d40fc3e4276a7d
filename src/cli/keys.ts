// `authgate keys rotate | list`: make a new signing key current, and show the keys (never private material).
import type { Command } from 'commander'
import type { Config } from '../config.js'
import { operatorDetail } from '../domain/audit.js'
import type { KeyAdmin, KeyInfo } from '../domain/keys.js'
import { openAudit, openBroadcast, openDatabase, openKeys } from '../services.js'
import type { Db } from '../storage/database.js'
import { migrateToLatest } from '../storage/migrate.js'
import { type Cli, snakeCase } from './context.js'

// Only the database and the keys: rotating must not also claim usernames or start anything.
async function withKeys<T>(config: Config, fn: (keys: KeyAdmin, db: Db) => Promise<T>): Promise<T> {
  const db = openDatabase(config)
  try {
    await migrateToLatest(db)
    return await fn(await openKeys(db, config), db)
  } finally {
    await db.destroy()
  }
}

const line = (k: KeyInfo) =>
  [
    k.kid,
    k.alg,
    k.createdAt,
    k.retiredAt ?? '-',
    k.state === 'retired' ? `retired, verifies until ${k.verifiesUntil}` : k.state,
  ].join('\t')

export function registerKeyCommands(program: Command, cli: Cli): void {
  const keys = program.command('keys').description('Manage the signing keys (ES256, EdDSA, RS256).')

  keys
    .command('rotate')
    .description(
      'Make a new signing key current. The old one keeps verifying, and stays in the JWKS, until every ' +
        'token it signed has expired. Running servers are told at once (Redis or PostgreSQL), and ' +
        're-read the keys every 5 s in any case.',
    )
    .action(async () => {
      const cfg = cli.config()
      const { current, retired } = await withKeys(cfg, async (k, db) => {
        const audit = openAudit(db, cfg, undefined, (err) =>
          cli.err(`Audit log write failed: ${err instanceof Error ? err.message : err}`),
        )
        try {
          const rotated = await k.rotate()
          audit.record({
            type: 'key.rotated',
            outcome: 'success',
            detail: {
              via: 'cli',
              ...operatorDetail(cli.operator()),
              kid: rotated.current.kid,
              alg: rotated.current.alg,
              retiredKid: rotated.retired?.kid ?? null,
            },
          })
          // Running servers sign with the new key from now on, not from their next reload. The
          // rotation is done whatever happens here: a failure to tell them is only reported.
          const unheard = () => cli.err('Could not tell running servers; they notice within 5 s.')
          try {
            const { broadcast, redis } = await openBroadcast(cfg, db, { onBroadcastError: unheard })
            await broadcast.publish('keys')
            await broadcast.close()
            await redis?.close()
          } catch {
            unheard()
          }
          return rotated
        } catch (err) {
          audit.record({
            type: 'key.rotated',
            outcome: 'failure',
            detail: {
              via: 'cli',
              ...operatorDetail(cli.operator()),
              alg: k.algorithm,
              reason: err instanceof Error ? err.message : String(err),
            },
          })
          throw err
        } finally {
          await audit.flush()
        }
      })
      cli.out(`New signing key ${current.kid} (${current.alg}) is current.`)
      if (retired) {
        cli.out(`Retired ${retired.kid} (${retired.alg}); it verifies until ${retired.verifiesUntil}.`)
      }
    })

  keys
    .command('list')
    .description('List the keys: kid, algorithm, created, retired, state. Never private material.')
    .option('--json', 'print JSON lines')
    .action(async (options: { json?: boolean }) => {
      const { algorithm, infos } = await withKeys(cli.config(), async (k) => ({
        algorithm: k.algorithm,
        infos: await k.list(),
      }))
      if (algorithm === 'HS256') {
        cli.err('Tokens are signed with HS256 (SECRET_KEY or the generated secret): no key pair is in use.')
      }
      if (infos.length === 0 && algorithm !== 'HS256') {
        cli.err('No signing key yet: the server makes one when it first starts (or run `keys rotate`).')
      }
      if (!options.json && infos.length > 0) cli.out(['kid', 'alg', 'created', 'retired', 'state'].join('\t'))
      for (const k of infos) cli.out(options.json ? JSON.stringify(snakeCase(k)) : line(k))
    })
}
