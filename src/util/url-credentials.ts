/**
 * fetch refuses a URL with `user:pass@` in it: the credentials move into an
 * `Authorization: Basic` header and out of the URL fetch is given.
 */
import { basicAuthToken, safeDecode } from '../logger';

/** Where a request to `url` goes and how it logs in: the URL without its credentials, and their header. */
export function requestWithoutCredentials(url: string): { url: string; headers: Record<string, string> } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url, headers: {} };
  }
  if (!parsed.username && !parsed.password) return { url, headers: {} };
  const user = safeDecode(parsed.username);
  const password = safeDecode(parsed.password);
  parsed.username = '';
  parsed.password = '';
  return { url: parsed.toString(), headers: { authorization: `Basic ${basicAuthToken(user, password)}` } };
}
