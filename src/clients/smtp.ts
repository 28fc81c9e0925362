/**
 * The SMTP server of `notifications.email`, for alert emails and the weekly
 * report: one way to connect to it, so both log in and bound their waits alike.
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../config/schema';

/** `notifications.email`: the SMTP server, the sender, the report's recipients and who gets alerts. */
/** An email channel's server, sender and recipients. */
export type EmailSettings = { smtp: NonNullable<Config['notifications']['email']>['smtp']; from: string; to: string[] };

/**
 * A transport to the configured server (logged in when `smtp.user` is
 * set). `connectMs` bounds the connection and the server's greeting,
 * `socketMs` any silence after that. The caller closes it.
 */
export function createSmtpTransport(smtp: EmailSettings['smtp'], timeouts: { connectMs: number; socketMs: number }): Transporter {
  return nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.password ?? '' } } : {}),
    connectionTimeout: timeouts.connectMs,
    greetingTimeout: timeouts.connectMs,
    socketTimeout: timeouts.socketMs,
  });
}
