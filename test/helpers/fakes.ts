// In-memory fakes of the domain's repositories, for unit tests of the domain on a frozen clock:
// the key table and the settings, doing what storage/keys.repository.ts and
// storage/settings.repository.ts do, for the key ring and what signs with it.
import type { KeysRepository, SettingsStore, SigningKeyRecord } from '../../src/domain/keys.js'

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

export function memoryKeys(): KeysRepository & { rows: SigningKeyRecord[]; reads: number } {
  const repo = {
    rows: [] as SigningKeyRecord[],
    reads: 0,
    async listKeys() {
      repo.reads++
      return repo.rows.map((r) => ({ ...r }))
    },
    currentKey: async (chain = 'primary') =>
      repo.rows.find((r) => r.chain === chain && r.retired_at === null),
    // What storage/keys.repository.ts schedule does, in memory: within the key's chain.
    async schedule(
      key: SigningKeyRecord,
      {
        activatesAt,
        keepIfAlg,
        revokeOthersAt,
      }: { activatesAt: number; keepIfAlg?: string; revokeOthersAt?: number },
    ) {
      const chain = repo.rows.filter((r) => r.chain === key.chain)
      const current = chain.find((r) => r.retired_at === null)
      if (current && current.alg === keepIfAlg) return { current, retired: undefined }
      for (const r of chain) {
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
