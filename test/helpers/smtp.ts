// A real SMTP server for the mail tests (issue 13 item 3): the npm smtp-server package listening
// on a local port, as an MTA would; each message that arrives is parsed just enough to read its
// recipient, subject and text, and handed to whoever awaits it (no polling).
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'

export interface ReceivedMail {
  to: string[]
  subject: string
  text: string
}

/** Quoted-printable (RFC 2045 §6.7), as nodemailer writes long lines. */
const unquote = (body: string) =>
  body
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

export class TestSmtpServer {
  readonly received: ReceivedMail[] = []
  #waiting: ((mail: ReceivedMail) => void)[] = []
  #server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData: (stream, session, done) => {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8')
        const split = raw.indexOf('\r\n\r\n')
        const headers = raw.slice(0, split)
        const mail = {
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: /^Subject: (.*)$/m.exec(headers)?.[1]?.trim() ?? '',
          text: /quoted-printable/i.test(headers) ? unquote(raw.slice(split + 4)) : raw.slice(split + 4),
        }
        const waiter = this.#waiting.shift()
        if (waiter) waiter(mail)
        else this.received.push(mail)
        done()
      })
    },
  })
  port = 0

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.server.address() as AddressInfo).port
    return this
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`
  }

  /** The next mail to arrive (or the oldest one not yet taken). */
  next(): Promise<ReceivedMail> {
    const queued = this.received.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }
}

/** The `token` of the first link in a mail that goes to `path`. */
export function linkToken(mail: ReceivedMail, path: string): string {
  const url = /https?:\/\/\S+/.exec(mail.text)?.[0]
  if (!url || new URL(url).pathname !== path) throw new Error(`no ${path} link in: ${mail.text}`)
  return new URL(url).searchParams.get('token') ?? ''
}
