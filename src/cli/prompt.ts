// Reads a password without echo from a terminal, or as one line from piped stdin. Never argv.
import type { ReadStream } from 'node:tty'

/** Strips one line terminator and nothing else: passwords are compared exactly. */
export function stripLineEnding(text: string): string {
  return text.replace(/\r?\n$/, '')
}

async function readPiped(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer))
  return stripLineEnding(Buffer.concat(chunks).toString('utf8'))
}

function readHidden(stdin: ReadStream, stderr: NodeJS.WriteStream, prompt: string): Promise<string> {
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
        if (ch === '\u0003') return done(new Error('cancelled'))
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('')
        else value += ch
      }
    }
    stdin.on('data', onData)
  })
}

export async function readPassword(prompt = 'Password: '): Promise<string> {
  const stdin = process.stdin
  if (!stdin.isTTY) return readPiped(stdin)
  const first = await readHidden(stdin as ReadStream, process.stderr, prompt)
  const second = await readHidden(stdin as ReadStream, process.stderr, 'Repeat password: ')
  if (first !== second) throw new Error('the passwords do not match')
  return first
}
