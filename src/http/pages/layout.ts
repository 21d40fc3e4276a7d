// The one layout every page shares: language, viewport, title, the stylesheet, a skip link and
// <main>. Nothing inline: no <script>, no style attribute (the CSP allows neither).

import { ICON_PATH, STYLESHEET_PATH } from './assets.js'
import { type Html, html } from './html.js'

export interface LayoutOptions {
  /** The page's own title; "AuthGate" is added. Prefixed "Error: " when the page reports one. */
  title: string
  hasError?: boolean
  body: Html
}

export function layout({ title, hasError = false, body }: LayoutOptions): Html {
  // WCAG 2.2 2.4.2 (page titled) and 2.4.1 (bypass blocks): a title that says what went wrong
  // is the first thing a screen reader reads of a re-rendered form.
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${hasError ? 'Error: ' : ''}${title} – AuthGate</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
<link rel="icon" href="${ICON_PATH}" type="image/svg+xml">
</head>
<body>
<a class="skip" href="#main">Skip to main content</a>
<main id="main" tabindex="-1">
<div class="card">
<p class="brand">AuthGate</p>
${body}
</div>
</main>
</body>
</html>
`
}
