// Tells the other processes of a deployment that shared state changed, so they re-read it now
// instead of at their next poll: a revocation (honoured everywhere within a second) or a signing
// key rotation. A signal carries no data: the database stays the one source of truth, and a lost
// or duplicated signal costs at most a poll interval or one extra read.
//
// Channels are tried in order (Redis pub/sub, then PostgreSQL NOTIFY); every process listens on
// all of them, so a process whose Redis is away still reaches the others through the database.
import { randomId } from '../lib/random.js'

export type Signal = 'revocations' | 'keys'
/** After a channel (re)connects: signals may have been missed, so re-read everything. */
export type Heard = Signal | 'resync'

export interface Channel {
  readonly name: string
  /** Rejects when the signal could not be handed to the channel. */
  publish(message: string): Promise<void>
  /** Starts listening; `onMessage` gets what any process published, `onResync` each reconnect. */
  listen(onMessage: (message: string) => void, onResync: () => void): Promise<void>
  close(): Promise<void>
}

export interface Broadcast {
  /** Never rejects: with no channel reachable, the other processes' polling still sees the change. */
  publish(signal: Signal): Promise<void>
  listen(onHeard: (heard: Heard) => void): Promise<void>
  close(): Promise<void>
}

const SIGNALS: ReadonlySet<string> = new Set<Signal>(['revocations', 'keys'])

export function createBroadcast(
  channels: readonly Channel[],
  { onError = () => {} }: { onError?: (err: unknown) => void } = {},
): Broadcast {
  // Messages are "<signal> <origin>": a process ignores its own, it has applied the change already.
  const origin = randomId()
  const sending = new Set<Promise<void>>()
  async function send(signal: Signal): Promise<void> {
    const errors: unknown[] = []
    for (const channel of channels) {
      try {
        await channel.publish(`${signal} ${origin}`)
        return
      } catch (err) {
        errors.push(err)
      }
    }
    if (errors.length > 0) onError(new AggregateError(errors, `no channel took the ${signal} signal`))
  }
  return {
    publish(signal) {
      const sent = send(signal).finally(() => sending.delete(sent))
      sending.add(sent)
      return sent
    },
    async listen(onHeard) {
      const onMessage = (message: string) => {
        const [signal, from] = message.split(' ')
        if (from !== origin && signal !== undefined && SIGNALS.has(signal)) onHeard(signal as Signal)
      }
      await Promise.all(channels.map((c) => c.listen(onMessage, () => onHeard('resync'))))
    },
    async close() {
      // A signal still on its way (a CLI command that revoked sessions, then exits) goes out first.
      await Promise.all(sending)
      await Promise.all(channels.map((c) => c.close()))
    },
  }
}
