// CORS over real HTTP (Fetch standard §3.2): a browser app on a listed origin may send credentials
// (the device cookie) and read the headers it needs; any other origin gets no CORS header at all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import { logIn, signUp } from '../helpers/http.js'

const APP = 'https://app.example.com'
const EVIL = 'https://evil.example'

async function listen(t: TestApp): Promise<string> {
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const address = t.app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return `http://127.0.0.1:${address.port}`
}

const corsHeaders = (res: Response) =>
  [...res.headers.keys()].filter((name) => name.startsWith('access-control-')).sort()

describe('CORS with CORS_ORIGINS, over HTTP', () => {
  let t: TestApp
  let base: string

  beforeAll(async () => {
    t = await buildTestApp({ CORS_ORIGINS: APP, RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '1' })
    base = await listen(t)
    expect((await signUp(base, 'corsy')).status).toBe(201)
  })

  afterAll(async () => {
    await t.close()
  })

  it('answers a preflight from a listed origin with credentials allowed', async () => {
    const res = await fetch(`${base}/auth/token`, {
      method: 'OPTIONS',
      headers: {
        origin: APP,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe(APP)
    expect(res.headers.get('access-control-allow-credentials')).toBe('true')
    expect(res.headers.get('access-control-allow-methods')).toContain('POST')
    expect(res.headers.get('access-control-allow-headers')).toContain('content-type')
    expect(res.headers.get('vary')).toMatch(/origin/i)
  })

  it('lets a listed origin log in with credentials and read Retry-After on a 429', async () => {
    const ok = await logIn(base, 'corsy', PASSWORD, { headers: { origin: APP } })
    expect(ok.status).toBe(200)
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP)
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true')
    expect(ok.headers.get('set-cookie')).toMatch(/^authgate_device=[^;]+;.*HttpOnly/)

    const wrong = () => logIn(base, 'corsy', 'not the password at all', { headers: { origin: APP } })
    let throttled: Response | undefined
    for (let i = 0; i < 5 && throttled === undefined; i++) {
      const res = await wrong()
      if (res.status === 429) throttled = res
      else expect(res.status).toBe(401)
    }
    if (throttled === undefined) throw new Error('never throttled')
    expect(throttled.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(throttled.headers.get('access-control-allow-origin')).toBe(APP)
    expect(throttled.headers.get('access-control-allow-credentials')).toBe('true')
    const exposed = (throttled.headers.get('access-control-expose-headers') ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
    expect(exposed).toEqual(expect.arrayContaining(['retry-after', 'www-authenticate', 'link']))
  })

  it('sends no CORS header at all to an origin that is not listed, nor without an Origin', async () => {
    const preflight = await fetch(`${base}/auth/token`, {
      method: 'OPTIONS',
      headers: { origin: EVIL, 'access-control-request-method': 'POST' },
    })
    expect(corsHeaders(preflight)).toEqual([])
    const actual = await logIn(base, 'corsy', 'nope nope nope', { headers: { origin: EVIL } })
    expect(actual.status).toBeGreaterThanOrEqual(400)
    expect(corsHeaders(actual)).toEqual([])
    // A lookalike (a listed origin as a prefix) is not listed either.
    const lookalike = await fetch(`${base}/healthz`, { headers: { origin: `${APP}.evil.example` } })
    expect(corsHeaders(lookalike)).toEqual([])
    expect(corsHeaders(await fetch(`${base}/healthz`))).toEqual([])
  })
})

describe('the device cookie and SameSite', () => {
  const always = ['Max-Age=31536000', 'Path=/auth', 'HttpOnly']
  it.each([
    [{}, [...always, 'SameSite=Strict']],
    [{ DEVICE_COOKIE_SAMESITE: 'lax' }, [...always, 'SameSite=Lax']],
    // RFC 6265bis §4.1.2.7: SameSite=None is honoured only with Secure; Partitioned (CHIPS) keeps
    // it where third-party cookies are blocked (test/e2e/cors-browser.test.ts).
    [
      { DEVICE_COOKIE_SAMESITE: 'none', CORS_ORIGINS: APP },
      [...always, 'SameSite=None', 'Secure', 'Partitioned'],
    ],
  ])('%o gives %s', async (env, expected) => {
    const t = await buildTestApp(env)
    try {
      const base = await listen(t)
      await signUp(base, 'cookie')
      const res = await logIn(base, 'cookie')
      expect(res.status).toBe(200)
      // Exactly these attributes, in any order (RFC 6265 §5.2 gives the order no meaning).
      const [pair, ...attributes] = res.headers.get('set-cookie')?.split('; ') ?? []
      expect(pair).toMatch(/^authgate_device=[\w-]+\.[\w-]+$/)
      expect(attributes.sort()).toEqual(expected.sort())
    } finally {
      await t.close()
    }
  })
})
