// In-memory fakes of the domain's repositories, for unit tests of the domain on a frozen clock.
import type { KeysRepository, SettingsStore, SigningKeyRecord } from '../../src/domain/keys.js'

/** A settings table in a Map. */
export function memorySettings(
  initial: Record<string, string> = {},
): SettingsStore & { values: Map<string, string> } {
  const values = new Map(Object.entries(initial))
  return {
    values,
    get: async (key) => values.get(key),
    async getOrInsert(key, value) {
      if (!values.has(key)) values.set(key, value)
      return values.get(key) as string
    },
  }
}

/**
 * A signing-key table in an array, scheduling as storage/keys.repository.ts scheduleSigningKey
 * does; `reads` counts listKeys calls.
 */
export function memoryKeys(): KeysRepository & { rows: SigningKeyRecord[]; reads: number } {
  const repo = {
    rows: [] as SigningKeyRecord[],
    reads: 0,
    async listKeys() {
      repo.reads++
      return repo.rows.map((r) => ({ ...r }))
    },
    currentKey: async () => repo.rows.find((r) => r.retired_at === null),
    async schedule(
      key: SigningKeyRecord,
      {
        activatesAt,
        keepIfAlg,
        revokeOthersAt,
      }: { activatesAt: number; keepIfAlg?: string; revokeOthersAt?: number },
    ) {
      const current = repo.rows.find((r) => r.retired_at === null)
      if (current && current.alg === keepIfAlg) return { current, retired: undefined }
      for (const r of repo.rows) {
        if (r.retired_at === null || r.retired_at > activatesAt) r.retired_at = activatesAt
        if (revokeOthersAt !== undefined && r.revoked_at === null) r.revoked_at = revokeOthersAt
      }
      const row = { ...key, activates_at: activatesAt, revoked_at: null }
      repo.rows.push(row)
      return { current: row, retired: current?.kid }
    },
  }
  return repo
}
