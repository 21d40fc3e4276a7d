// `authgate keys rotate [--now] | list`: publish the next signing key (and switch to it once every
// cache can have it, or at once), and show the keys with their states (never private material).
import type { Command } from 'commander'
import type { Config } from '../config.js'
import { operatorDetail } from '../domain/audit.js'
import type { SettingsMode } from '../domain/deployment.js'
import {
  DEFAULT_KEY_RELOAD_MS,
  HS256_ROTATE_NOTE,
  type KeyAdmin,
  type KeyInfo,
  type Rotation,
} from '../domain/keys.js'
import { openAudit, openDatabase, openKeys } from '../services.js'
import type { Db } from '../storage/database.js'
import { migrateToLatest } from '../storage/migrate.js'
import { type Cli, tellRunningServers } from './context.js'

// Only the database and the keys: rotating must not also claim usernames or start anything.
async function withKeys<T>(
  config: Config,
  mode: SettingsMode,
  fn: (keys: KeyAdmin, db: Db) => Promise<T>,
): Promise<T> {
  const db = openDatabase(config)
  try {
    await migrateToLatest(db)
    // The deployment's algorithm, not this shell's: a contradicting environment stops here.
    return await fn(await openKeys(db, config, undefined, mode), db)
  } finally {
    await db.destroy()
  }
}

const COLUMNS = ['kid', 'alg', 'state', 'created', 'activates', 'retires', 'verifies_until', 'chain']
const line = (k: KeyInfo) =>
  [
    k.kid,
    k.alg,
    k.state,
    k.createdAt,
    k.activatesAt,
    k.retiresAt ?? '-',
    k.verifiesUntil ?? '-',
    k.chain,
  ].join('\t')
// --json: snake_case, as the API spells its fields.
const json = (k: KeyInfo) =>
  JSON.stringify({
    kid: k.kid,
    alg: k.alg,
    state: k.state,
    created_at: k.createdAt,
    activates_at: k.activatesAt,
    retires_at: k.retiresAt,
    verifies_until: k.verifiesUntil,
    chain: k.chain,
  })
const seconds = (ms: number) => `${Math.round(ms / 1000)} s`

export function registerKeyCommands(program: Command, cli: Cli): void {
  const keys = program.command('keys').description('Manage the signing keys (ES256, EdDSA, RS256).')

  keys
    .command('rotate')
    .description(
      "Publish a new signing key of each chain (the deployment's algorithm, and the RS256 key of ID tokens; " +
        'with HS256 only the latter) at once (in the JWKS, and loaded by every server within a second) and ' +
        'make it sign after KEY_ACTIVATION_DELAY_SECONDS (default: the JWKS max-age + 6 s), when every ' +
        'server and every JWKS cache has it; the old key signs until then and verifies until its tokens ' +
        'have expired. No token is refused on the way.',
    )
    .option(
      '--now',
      'for a compromised key: the new key signs at once and every older key stops verifying at once ' +
        '(every access token issued so far is refused; verifiers with a cached JWKS refuse new tokens ' +
        'until they fetch it again)',
    )
    .action(async (options: { now?: boolean }) => {
      const cfg = cli.config()
      const now = options.now === true
      let algorithm: KeyAdmin['algorithm'] | undefined
      const rotation = await withKeys(cfg, 'record', async (k, db) => {
        algorithm = k.algorithm
        const audit = openAudit(db, cfg, undefined, (err) =>
          cli.err(`Audit log write failed: ${err instanceof Error ? err.message : err}`),
        )
        try {
          const rotated = await k.rotate({ now })
          audit.record({
            type: 'key.rotated',
            outcome: 'success',
            detail: {
              via: 'cli',
              ...operatorDetail(cli.operator()),
              kid: rotated.key.kid,
              alg: rotated.key.alg,
              activatesAt: rotated.key.activatesAt,
              immediate: now,
              retiredKid: rotated.previous?.kid ?? null,
              revokedKids: rotated.revoked.map((r) => r.kid).join(' ') || null,
              rs256Kid: rotated.rs256?.key.kid ?? null,
              rs256RetiredKid: rotated.rs256?.previous?.kid ?? null,
            },
          })
          // Running servers load the new key now, not at their next reload.
          await tellRunningServers(cli, cfg, db, 'keys', seconds(DEFAULT_KEY_RELOAD_MS))
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
      if (algorithm === 'HS256') cli.err(HS256_ROTATE_NOTE)
      const rotations = [rotation, ...(rotation.rs256 ? [rotation.rs256] : [])]
      for (const r of rotations) report(r)
      if (now) {
        cli.out(
          'What this costs: every access token issued before now is refused (clients get a new one by ' +
            'refreshing: refresh tokens still work, or by logging in). Services that verify through a ' +
            `cached JWKS refuse the new key's tokens until they fetch it again (up to ${cfg.jwksMaxAgeSeconds} s, ` +
            "the JWKS max-age; jose's createRemoteJWKSet refetches on an unknown kid, after its 30 s cooldown). " +
            `A server that has not heard of the rotation yet (up to ${seconds(DEFAULT_KEY_RELOAD_MS)}) signs with ` +
            'the revoked key meanwhile, and those tokens are refused too.',
        )
      }

      function report({ key, previous, revoked }: Rotation): void {
        const what = key.chain === 'rs256' ? ' for ID tokens' : ''
        if (!now) {
          cli.out(
            `New signing key ${key.kid} (${key.alg})${what} is published now and signs from ${key.activatesAt} ` +
              `(in ${seconds(cfg.keyActivationDelayMs)}: KEY_ACTIVATION_DELAY_SECONDS).`,
          )
          if (previous) {
            cli.out(
              `${previous.kid} (${previous.alg}) signs until then; it verifies until ${previous.verifiesUntil}.`,
            )
          }
          return
        }
        cli.out(`New signing key ${key.kid} (${key.alg})${what} signs now.`)
        for (const r of revoked) cli.out(`Revoked ${r.kid} (${r.alg}): its tokens are refused from now on.`)
      }
    })

  keys
    .command('list')
    .description(
      'List the keys, newest first: kid, algorithm, state (next: published, not signing yet; current; ' +
        'retired: verifies until its tokens have expired; expired; revoked), created, activates, retires, ' +
        'verifies until. Never private material.',
    )
    .option('--json', 'print JSON lines')
    .action(async (options: { json?: boolean }) => {
      const cfg = cli.config()
      const { algorithm, infos } = await withKeys(cfg, 'read', async (k) => ({
        algorithm: k.algorithm,
        infos: await k.list(),
      }))
      if (algorithm === 'HS256') {
        cli.err(
          'Access tokens are signed with HS256 (SECRET_KEY or the generated secret); the key pairs here ' +
            '(the rs256 chain) sign ID tokens and client access tokens.',
        )
      }
      if (infos.length === 0) {
        cli.err('No signing key yet: the server makes them when it first starts (or run `keys rotate`).')
      }
      if (!options.json) {
        cli.err(
          `keys rotate publishes the next key ${seconds(cfg.keyActivationDelayMs)} before it signs (KEY_ACTIVATION_DELAY_SECONDS).`,
        )
      }
      if (!options.json && infos.length > 0) cli.out(COLUMNS.join('\t'))
      for (const k of infos) cli.out(options.json ? json(k) : line(k))
    })
}
