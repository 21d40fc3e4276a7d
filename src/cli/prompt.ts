// Reads a password without echo from a terminal, or from piped stdin as exactly one line (which a
// second line may repeat). Never argv.
import type { ReadStream } from 'node:tty'

/** What the CLI reads from: a terminal (raw mode, no echo) or a pipe. */
export type PasswordInput = NodeJS.ReadableStream & { isTTY?: boolean }

/** A password piped in, or typed, that is refused; the message never holds the password. */
export class PasswordInputError extends Error {
  override name = 'PasswordInputError'
}

// Far beyond PASSWORD_MAX_LENGTH (at most 1024 characters) twice over: what is longer is no password.
const MAX_PIPED_BYTES = 16 * 1024

// C0 and C1 controls and DEL (Unicode general category Cc). A password is what a person types;
// one of these is a stray byte from a file or a terminal, not a character they chose.
const CONTROL = /\p{Cc}/u

function refuseControls(text: string, where: string): void {
  const found = CONTROL.exec(text)
  if (found) {
    const code = (found[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')
    throw new PasswordInputError(
      `${where} holds a control character (U+${code}); a password is printable text`,
    )
  }
}

/**
 * The password in piped stdin: the first line; an optional second line must repeat it exactly
 * (what `printf 'pw\npw\n'` or a script answering both prompts sends). A third line, a second that
 * differs, an empty first line, or a control character anywhere (other than LF or CRLF ending a
 * line) is refused. Nothing is trimmed: spaces are part of the password.
 */
export function passwordFromPipe(text: string): string {
  const body = text.replace(/\r?\n$/, '')
  const lines = body.split(/\r?\n/)
  if (lines.length > 2) {
    throw new PasswordInputError(
      `stdin holds ${lines.length} lines; expected the password on one line, optionally repeated on a second`,
    )
  }
  const [first = '', second] = lines
  refuseControls(first, 'the password on stdin')
  if (first === '') throw new PasswordInputError('stdin holds no password (its first line is empty)')
  if (second !== undefined && second !== first) {
    refuseControls(second, "stdin's second line")
    throw new PasswordInputError("stdin's second line does not repeat the first; nothing was changed")
  }
  return first
}

async function readPiped(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stdin) {
    const buffer = Buffer.from(chunk as Buffer)
    size += buffer.length
    if (size > MAX_PIPED_BYTES) throw new PasswordInputError(`stdin holds more than ${MAX_PIPED_BYTES} bytes`)
    chunks.push(buffer)
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))
  } catch {
    throw new PasswordInputError('stdin is not valid UTF-8')
  }
  return passwordFromPipe(text)
}

function readHidden(stdin: ReadStream, stderr: NodeJS.WritableStream, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let value = ''
    stderr.write(prompt)
    stdin.setRawMode(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    const done = (err?: Error) => {
      stdin.setRawMode(false)
      stdin.pause()
      stdin.off('data', onData)
      stderr.write('\n')
      if (err) reject(err)
      else resolve(value)
    }
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done()
        if (ch === '\u0003') return done(new PasswordInputError('cancelled'))
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('')
        else value += ch
      }
    }
    stdin.on('data', onData)
  })
}

/** Asks twice on a terminal (no echo, on stderr); reads one line (perhaps repeated) from a pipe. */
export async function readPassword(
  stdin: PasswordInput,
  stderr: NodeJS.WritableStream,
  prompt = 'Password: ',
): Promise<string> {
  if (!stdin.isTTY) return readPiped(stdin)
  const first = await readHidden(stdin as ReadStream, stderr, prompt)
  refuseControls(first, 'the password')
  const second = await readHidden(stdin as ReadStream, stderr, 'Repeat password: ')
  if (first !== second) throw new PasswordInputError('the passwords do not match')
  return first
}
