// HTML built from tagged templates that escape every interpolation by default (OWASP XSS
// Prevention Cheat Sheet: output encoding for HTML contexts and quoted HTML attributes). Only a
// value made by html`` or raw() goes in as it is; raw() is for trusted fragments written here.

const SAFE: unique symbol = Symbol('authgate.html')

/** Markup that is safe to insert as it is: made by html`` (escaped) or raw() (trusted). */
export interface Html {
  readonly [SAFE]: string
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}

/** Text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string)
}

/** Trusted markup, inserted unescaped: only for constants and fragments written in this code. */
export function raw(trusted: string): Html {
  return { [SAFE]: trusted }
}

function isHtml(value: unknown): value is Html {
  return typeof value === 'object' && value !== null && SAFE in value
}

/** One interpolated value: Html as it is, a list item by item, nothing for null/undefined/false. */
function render(value: unknown): string {
  if (value === undefined || value === null || value === false) return ''
  if (isHtml(value)) return value[SAFE]
  if (Array.isArray(value)) return value.map(render).join('')
  return escapeHtml(String(value))
}

/** `html\`<p>${text}</p>\``: the literal parts as written, every value escaped unless it is Html. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? ''
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '')
  return { [SAFE]: out }
}

/** The finished document's text. */
export function htmlText(page: Html): string {
  return page[SAFE]
}
