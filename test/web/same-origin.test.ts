/**
 * The cross-site guard's decision from headers alone. The requests it lets
 * through or refuses end to end (and that nothing changed in the queue) are
 * in test/faults/web-attacks.test.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { judgeOrigin } from '../../src/web/same-origin';

const HOST = 'caretaker.example.com';
const PUBLIC = ['https://ops.example.com'];

function judge(method: string, headers: IncomingHttpHeaders, trusted: string[] = []) {
  return judgeOrigin(method, { host: HOST, ...headers }, trusted);
}

describe('judgeOrigin', () => {
  it.each(['GET', 'HEAD', 'OPTIONS', 'get'])('lets %s through from anywhere: it changes nothing', (method) => {
    expect(judge(method, { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' })).toEqual({ ok: true });
  });

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('lets %s through without Sec-Fetch-Site, Origin or Referer (curl, scripts)', (method) => {
    expect(judge(method, {})).toEqual({ ok: true });
  });

  it.each([
    ['same-origin', true],
    ['none', true],
    ['SAME-ORIGIN', true],
    ['same-site', false],
    ['cross-site', false],
    ['something-new', false],
    ['same-origin, cross-site', false],
  ])('with Sec-Fetch-Site %s, allows: %s', (site, ok) => {
    expect(judge('PUT', { 'sec-fetch-site': site }).ok).toBe(ok);
  });

  it('trusts Sec-Fetch-Site over Origin when both are sent', () => {
    expect(judge('PUT', { 'sec-fetch-site': 'cross-site', origin: `https://${HOST}` })).toEqual({ ok: false, reason: 'Sec-Fetch-Site is not same-origin' });
    expect(judge('PUT', { 'sec-fetch-site': 'same-origin', origin: 'https://evil.example' }).ok).toBe(true);
  });

  it.each([
    [`https://${HOST}`, true],
    [`http://${HOST}`, true],
    [`https://${HOST}:443`, true],
    [`http://${HOST}:8080`, false],
    ['https://evil.example', false],
    [`https://${HOST}.evil.example`, false],
    [`https://sub.${HOST}`, false],
    ['null', false],
    ['not a url', false],
    [`file://${HOST}`, false],
  ])('without Sec-Fetch-Site, Origin %s allowed: %s', (origin, ok) => {
    expect(judge('POST', { origin }).ok).toBe(ok);
  });

  it('compares the port as the Host header gives it', () => {
    expect(judgeOrigin('PUT', { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' }).ok).toBe(true);
    expect(judgeOrigin('PUT', { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3001' }).ok).toBe(false);
    expect(judgeOrigin('PUT', { host: `${HOST}:80`, origin: `http://${HOST}` }).ok).toBe(true);
    expect(judgeOrigin('PUT', { host: '[::1]:3000', origin: 'http://[::1]:3000' }).ok).toBe(true);
  });

  it('refuses an Origin when the request has no Host to compare it with', () => {
    expect(judgeOrigin('PUT', { origin: `https://${HOST}` }).ok).toBe(false);
  });

  it('falls back to Referer when there is no Origin', () => {
    expect(judge('POST', { referer: `https://${HOST}/admin/queues/queue/caretaker` }).ok).toBe(true);
    expect(judge('POST', { referer: 'https://evil.example/page' })).toEqual({ ok: false, reason: 'Referer is another site' });
    // Origin, when sent, is what counts.
    expect(judge('POST', { origin: 'https://evil.example', referer: `https://${HOST}/` })).toEqual({ ok: false, reason: 'Origin is another site' });
  });

  it('trusts the public URL\'s origin when a proxy rewrote Host', () => {
    expect(judgeOrigin('PUT', { host: '127.0.0.1:3000', origin: 'https://ops.example.com' }, PUBLIC).ok).toBe(true);
    expect(judgeOrigin('PUT', { host: '127.0.0.1:3000', origin: 'http://ops.example.com' }, PUBLIC).ok).toBe(false);
  });
});
