/**
 * A local SMTP server (smtp-server) that keeps every message it accepts,
 * parsed back with mailparser, with its raw source. Plain SMTP on
 * 127.0.0.1 (no STARTTLS), as caretaker's `secure: false` client sends.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';

/** A received message: mailparser's view of it, and the bytes as sent. */
export type ReceivedMail = ParsedMail & { raw: string };

export interface SmtpSink {
  port: number;
  /** Every message accepted, in order; tests may empty it (`mails.length = 0`). */
  mails: ReceivedMail[];
  close(): Promise<void>;
}

export interface SmtpSinkOptions {
  /**
   * Decides each login (true: accepted, false: refused with 535); with it
   * a client must log in. Without it, logging in is optional and any
   * login is accepted.
   */
  login?: (user: string, password: string) => boolean;
}

/**
 * Starts the sink on a free port. A message is in `mails` before the
 * client's send resolves (the server answers after parsing it). HTML
 * keeps its `cid:` links, so a test can match them with the attachments.
 */
export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: !opts.login,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    // close() otherwise waits up to 30 s for a client connection to go away.
    closeTimeout: 1_000,
    onAuth(auth, _session, cb) {
      if (opts.login && !opts.login(auth.username ?? '', auth.password ?? '')) {
        cb(Object.assign(new Error('Authentication refused'), { responseCode: 535 }));
        return;
      }
      cb(null, { user: auth.username });
    },
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        simpleParser(raw, { keepCidLinks: true })
          .then((mail) => {
            mails.push(Object.assign(mail, { raw: raw.toString('utf8') }));
            cb();
          })
          .catch((err: Error) => cb(err));
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.server.address() as AddressInfo).port,
    mails,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
