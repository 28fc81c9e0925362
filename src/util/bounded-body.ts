/**
 * Reading an HTTP answer's body with a bound on its size: a server (or a
 * proxy in front of it) that sends more than a client ever needs is refused
 * before it fills the process's memory. The fetch clients share it.
 */

/** The body was larger than the bound: the caller says which bound, in its own words. */
export class ResponseTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the answer is larger than ${limit} bytes`);
  }
}

/** The body's bytes, refusing more than `limit` (the stream is cancelled then). */
export async function readBoundedBytes(res: Response, limit: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new ResponseTooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** The body as UTF-8 text, refusing more than `limit` bytes. */
export async function readBoundedText(res: Response, limit: number): Promise<string> {
  return (await readBoundedBytes(res, limit)).toString('utf8');
}

/** JSON.parse that answers undefined instead of throwing: a server's garbage is a message, not a crash. */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
