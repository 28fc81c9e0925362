/**
 * A local alert webhook: records every JSON body it is sent, in order, and
 * answers with the status the test chooses at that moment.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookReceiver<T> {
  /** `http://127.0.0.1:<port><path>` */
  url: string;
  /** Every body received, parsed; tests may empty it (`received.length = 0`). */
  received: T[];
  close(): Promise<void>;
}

export async function startWebhookReceiver<T = Record<string, unknown>>(opts: { path?: string; status?: () => number } = {}): Promise<WebhookReceiver<T>> {
  const received: T[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
      const status = opts.status?.() ?? 200;
      res.statusCode = status;
      res.end(status === 200 ? 'ok' : 'boom');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${opts.path ?? '/hook'}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
