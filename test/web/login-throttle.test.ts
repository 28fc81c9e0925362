/**
 * The failed-login throttle on its own, on a clock the test moves: the
 * budget, the lockout and its end, one warning per lockout, the bound on
 * memory, and the key an address is counted under.
 */
import { captureLog } from '../support/log-capture';
import { clientKey, LOCKOUT_MS, LoginThrottle, MAX_FAILURES, MAX_TRACKED, WINDOW_MS, type LoginThrottleOptions } from '../../src/web/login-throttle';

/** A throttle on a hand-moved clock, and the lines it logged. */
function throttle(options: Partial<LoginThrottleOptions> = {}) {
  let now = Date.parse('2026-11-12T03:00:00Z');
  const { log, lines } = captureLog();
  const t = new LoginThrottle(log, { now: () => now, ...options });
  return {
    t,
    advance: (ms: number) => void (now += ms),
    warnings: () => lines().filter((l) => l.level === 40),
  };
}

function failTimes(t: LoginThrottle, key: string, times: number): void {
  for (let i = 0; i < times; i++) t.fail(key);
}

describe('the documented limits', () => {
  it('are 10 failures per 60 s, a 60 s lockout, 10,000 tracked clients', () => {
    expect([MAX_FAILURES, WINDOW_MS, LOCKOUT_MS, MAX_TRACKED]).toEqual([10, 60_000, 60_000, 10_000]);
  });
});

describe('LoginThrottle', () => {
  it('locks a client out at its 10th failure, for 60 s, then gives it a fresh budget', () => {
    const { t, advance } = throttle();
    failTimes(t, '10.0.0.5', 9);
    expect(t.check('10.0.0.5')).toEqual({ locked: false });
    t.fail('10.0.0.5');
    expect(t.check('10.0.0.5')).toEqual({ locked: true, retryAfterSeconds: 60 });
    advance(59_500);
    expect(t.check('10.0.0.5')).toEqual({ locked: true, retryAfterSeconds: 1 });
    advance(500);
    expect(t.check('10.0.0.5')).toEqual({ locked: false });
    // A fresh budget: one more failure does not lock it again.
    t.fail('10.0.0.5');
    expect(t.check('10.0.0.5')).toEqual({ locked: false });
  });

  it('forgets failures whose window is over', () => {
    const { t, advance } = throttle();
    failTimes(t, '10.0.0.5', 9);
    advance(WINDOW_MS);
    failTimes(t, '10.0.0.5', 9);
    expect(t.check('10.0.0.5')).toEqual({ locked: false });
  });

  it('does not lengthen a lockout for attempts made during it', () => {
    const { t, advance } = throttle();
    failTimes(t, '10.0.0.5', 10);
    advance(30_000);
    failTimes(t, '10.0.0.5', 50);
    expect(t.check('10.0.0.5')).toEqual({ locked: true, retryAfterSeconds: 30 });
    advance(30_000);
    expect(t.check('10.0.0.5')).toEqual({ locked: false });
  });

  it('counts each client on its own', () => {
    const { t } = throttle();
    failTimes(t, '10.0.0.5', 10);
    failTimes(t, '10.0.0.6', 9);
    expect(t.check('10.0.0.5').locked).toBe(true);
    expect(t.check('10.0.0.6').locked).toBe(false);
  });

  it('logs one warning per lockout, naming the client and the limits only', () => {
    const { t, advance, warnings } = throttle();
    failTimes(t, '10.0.0.5', 25);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ msg: 'web: too many failed logins, client locked out', client: '10.0.0.5', failures: 10, windowSeconds: 60, lockoutSeconds: 60 });
    advance(LOCKOUT_MS);
    failTimes(t, '10.0.0.5', 10);
    expect(warnings()).toHaveLength(2);
  });

  it('keeps at most maxTracked clients, forgetting the oldest first', () => {
    const { t } = throttle({ maxTracked: 3 });
    failTimes(t, 'a', 9);
    for (const key of ['b', 'c', 'd', 'e']) t.fail(key);
    expect(t.size).toBe(3);
    // `a` was evicted: its 9 failures are gone, so one more does not lock it.
    t.fail('a');
    expect(t.check('a').locked).toBe(false);
    expect(t.size).toBe(3);
  });

  it('takes its limits from the options', () => {
    const { t } = throttle({ maxFailures: 2, lockoutMs: 5_000 });
    failTimes(t, 'a', 2);
    expect(t.check('a')).toEqual({ locked: true, retryAfterSeconds: 5 });
  });
});

describe('clientKey', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002::9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    [undefined, 'unknown'],
    ['', 'unknown'],
  ])('%s is counted as %s', (address, key) => {
    expect(clientKey(address)).toBe(key);
  });

  it('puts every address of one /64 under one key, and other /64s apart', () => {
    expect(clientKey('2001:db8:aa:bb:1::1')).toBe(clientKey('2001:db8:aa:bb:ffff:ffff:ffff:ffff'));
    expect(clientKey('2001:db8:aa:bb::1')).not.toBe(clientKey('2001:db8:aa:bc::1'));
  });
});
