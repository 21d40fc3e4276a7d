// What the /docs page runs and wears: our Swagger UI initializer and stylesheet, served as files
// from this server (the docs CSP allows scripts and styles from 'self' only, never inline).

/** Where the spec is served: absolute, as FastAPI's docs page has it (`url: '/openapi.json'`). */
export const SPEC_URL = '/openapi.json'

/**
 * Replaces @fastify/swagger-ui's swagger-initializer.js, which resolves the spec URL against the
 * page's whole href: from /docs?x=1 it fetched "/docs?x=1/./json", the page itself, and showed no
 * operations. Ours also:
 * - names the top bar AuthGate: the standalone preset's Swagger logo is an SVG holding a <style>
 *   element, which the docs CSP (style-src 'self') refuses and the console reports;
 * - says why an Authorize failed (the `detail` of the token endpoint's answer, and Retry-After on
 *   a 429), where Swagger UI shows only the status text, "Auth Error Error: Unauthorized".
 * Plain ES2017 in a string: it runs in the browser as it is written here, untranspiled.
 */
export const INITIALIZER_JS = `'use strict'
window.onload = function () {
  var TOKEN_PATH = /\\/auth\\/token$/
  var authFailure = null

  // Every response Swagger UI receives, the Authorize dialog's token request included.
  function responseInterceptor(response) {
    var path = ''
    try { path = new URL(response.url, window.location.href).pathname } catch (e) {}
    if (!response.ok && TOKEN_PATH.test(path)) {
      var body = response.body
      if (typeof body === 'string') { try { body = JSON.parse(body) } catch (e) { body = null } }
      var detail = body && typeof body.detail === 'string' ? body.detail : response.statusText
      var retryAfter = response.headers && response.headers['retry-after']
      authFailure = detail + ' (' + response.status + (retryAfter ? '; retry in ' + retryAfter + ' s' : '') + ')'
    }
    return response
  }

  function AuthGatePlugin(system) {
    var h = system.React.createElement
    return {
      components: {
        Logo: function () { return h('span', { className: 'authgate-logo' }, 'AuthGate') },
      },
      statePlugins: {
        err: {
          wrapActions: {
            newAuthErr: function (original) {
              return function (error) {
                if (authFailure !== null && error && error.source === 'auth') {
                  error = Object.assign({}, error, { message: authFailure })
                }
                authFailure = null
                return original(error)
              }
            },
          },
        },
      },
    }
  }

  var ui = SwaggerUIBundle({
    url: ${JSON.stringify(SPEC_URL)},
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl, AuthGatePlugin],
    layout: 'StandaloneLayout',
    validatorUrl: null,
    persistAuthorization: false,
    oauth2RedirectUrl: new URL('/docs/static/oauth2-redirect.html', window.location.href).href,
    responseInterceptor: responseInterceptor,
  })
  ui.initOAuth({})
}
`

/** The top bar's name, in the stylesheet the docs page links (theme.css). */
export const THEME_CSS = `.swagger-ui .topbar .authgate-logo {
  color: #fff;
  font-family: sans-serif;
  font-size: 1.5em;
  font-weight: 700;
  letter-spacing: 0.02em;
}
`
