// Sending mail (issue 13 item 3): nodemailer to SMTP_URL. Without it, in development only, each
// mail goes to the log instead, so the flows can be tried with no mail server; with
// NODE_ENV=production there is no mailer at all, and the flows that need one answer 503.
import type { Transporter } from 'nodemailer'
import type { Config } from './config.js'
import type { Mail, Mailer } from './domain/email.js'

export function smtpMailer(url: string, from: string): Mailer {
  // Made at the first mail: nodemailer is not imported by a start that sends none.
  let transport: Promise<Transporter> | undefined
  return {
    async send(mail) {
      transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(url))
      await (await transport).sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text })
    },
  }
}

/** The mailer a deployment gets: SMTP, the log (development without SMTP_URL), or none. */
export function mailerFor(config: Config, logged: (mail: Mail) => void): Mailer | undefined {
  const from = config.mailFrom ?? `AuthGate <no-reply@${new URL(config.publicUrl).hostname}>`
  if (config.smtpUrl) return smtpMailer(config.smtpUrl, from)
  if (config.nodeEnv === 'production') return undefined
  return {
    async send(mail) {
      logged(mail)
    },
  }
}
