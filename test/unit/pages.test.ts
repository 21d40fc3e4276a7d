// The pages' building blocks, without a server: escaping, the return_to rule, the CSRF tokens.
import { describe, expect, it } from 'vitest'
import { createCsrfTokens } from '../../src/domain/csrf.js'
import { escapeHtml, html, htmlText, raw } from '../../src/http/pages/html.js'
import { safeReturnTo } from '../../src/http/pages/return-to.js'

describe('html``', () => {
  it('escapes every interpolation, in text and in quoted attributes', () => {
    const name = `<script>alert("x")</script>&'`
    expect(htmlText(html`<p title="${name}">${name}</p>`)).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;">' +
        '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</p>',
    )
  })

  it('inserts html`` and raw() fragments as they are, lists item by item, and nothing for null, undefined, false', () => {
    const items = ['<a>', html`<b>${'<c>'}</b>`]
    expect(htmlText(html`${raw('<hr>')}${items}${undefined}${null}${false}${0}`)).toBe(
      '<hr>&lt;a&gt;<b>&lt;c&gt;</b>0',
    )
  })

  it('does not take a plain object for markup', () => {
    expect(htmlText(html`${{ toString: () => '<i>' }}`)).toBe('&lt;i&gt;')
    expect(escapeHtml('a&b')).toBe('a&amp;b')
  })
})

describe('safeReturnTo', () => {
  it.each([
    ['/authorize?client_id=a&state=b', '/authorize?client_id=a&state=b'],
    ['/login', '/login'],
    ['/a/../b', '/b'],
    ['/x#frag', '/x#frag'],
    ['/%2F%2Fevil.example', '/%2F%2Fevil.example'],
  ])('keeps the local path %s', (value, expected) => {
    expect(safeReturnTo(value)).toBe(expected)
  })

  it.each([
    '//evil.example',
    '//evil.example/path',
    '/\\evil.example',
    '\\\\evil.example',
    '/a\\b',
    'https://evil.example',
    'http:evil.example',
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    'data:text/html,x',
    '/\t/evil.example',
    '/\n/evil.example',
    ' /x',
    '/x y',
    'evil.example',
    '',
    `/${'a'.repeat(2048)}`,
  ])('refuses %j', (value) => {
    expect(safeReturnTo(value)).toBeUndefined()
  })

  it('refuses nothing given', () => {
    expect(safeReturnTo(undefined)).toBeUndefined()
  })
})

describe('CSRF tokens', () => {
  const csrf = createCsrfTokens('a'.repeat(64))

  it('verifies a token for its own binding, and a fresh token each time', () => {
    const binding = csrf.newBinding()
    const a = csrf.tokenFor(binding)
    const b = csrf.tokenFor(binding)
    expect(a).not.toBe(b)
    expect(csrf.verify(binding, a)).toBe(true)
    expect(csrf.verify(binding, b)).toBe(true)
  })

  it('refuses another binding, another secret, a tampered or missing token, and a malformed binding', () => {
    const binding = csrf.newBinding()
    const token = csrf.tokenFor(binding)
    expect(csrf.verify(csrf.newBinding(), token)).toBe(false)
    expect(createCsrfTokens('b'.repeat(64)).verify(binding, token)).toBe(false)
    const [nonce, mac] = token.split('.') as [string, string]
    expect(csrf.verify(binding, `${nonce}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`)).toBe(false)
    expect(csrf.verify(binding, `${csrf.tokenFor(binding).split('.')[0]}.${mac}`)).toBe(false)
    expect(csrf.verify(binding, undefined)).toBe(false)
    expect(csrf.verify(binding, '')).toBe(false)
    expect(csrf.verify(undefined, token)).toBe(false)
    expect(csrf.verify('short', csrf.tokenFor('short'))).toBe(false)
    expect(csrf.isBinding(binding)).toBe(true)
    expect(csrf.isBinding('not one')).toBe(false)
  })
})
