/**
 * The detailed health parser on the answers of the formats it reads, as
 * those libraries write them: Spring Boot actuator, the IETF health-check
 * draft (application/health+json), terminus, a flat map of components.
 */
import { classifyStatus, readDetailedHealth, worstClass } from '../../src/clients/detailed-health';

describe('readDetailedHealth', () => {
  it("reads Spring Boot actuator's status and components", () => {
    const body = {
      status: 'DOWN',
      components: {
        db: { status: 'UP', details: { database: 'PostgreSQL', validationQuery: 'isValid()' } },
        diskSpace: { status: 'UP', details: { total: 1, free: 1, threshold: 1, exists: true } },
        redis: { status: 'OUT_OF_SERVICE', details: { error: 'connection refused' } },
      },
    };
    expect(readDetailedHealth(JSON.stringify(body))).toEqual({
      status: 'DOWN',
      components: [
        { name: 'db', status: 'UP' },
        { name: 'diskSpace', status: 'UP' },
        { name: 'redis', status: 'OUT_OF_SERVICE' },
      ],
    });
  });

  it('reads the IETF draft: a component with several checks has the worst of them', () => {
    const body = {
      status: 'warn',
      version: '1',
      checks: {
        'postgres:responseTime': [
          { componentId: 'a', status: 'pass', observedValue: 3 },
          { componentId: 'b', status: 'warn', observedValue: 250 },
        ],
        'uptime': [{ status: 'pass' }],
      },
    };
    expect(readDetailedHealth(JSON.stringify(body))).toEqual({
      status: 'warn',
      components: [
        { name: 'postgres:responseTime', status: 'warn' },
        { name: 'uptime', status: 'pass' },
      ],
    });
  });

  it("reads terminus's info and error maps, the same component named once with its worst status", () => {
    const body = { status: 'error', info: { database: { status: 'up' } }, error: { redis: { status: 'down', message: 'timeout' }, database: { status: 'down' } }, details: {} };
    expect(readDetailedHealth(JSON.stringify(body))).toEqual({
      status: 'error',
      components: [
        { name: 'redis', status: 'down' },
        { name: 'database', status: 'down' },
      ],
    });
  });

  it('reads a flat map of components with boolean statuses, without an overall status', () => {
    expect(readDetailedHealth(JSON.stringify({ postgres: { status: true }, queue: { status: false }, uptime: 12 }))).toEqual({
      status: undefined,
      components: [
        { name: 'postgres', status: 'up' },
        { name: 'queue', status: 'down' },
      ],
    });
  });

  it('lists 100 components at most', () => {
    const components = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`c${i}`, { status: 'UP' }]));
    const health = readDetailedHealth(JSON.stringify({ status: 'UP', components }));
    expect(health?.components).toHaveLength(100);
    expect(health?.components.at(-1)).toEqual({ name: 'c99', status: 'UP' });
  });

  it('is undefined for what is not a JSON health answer', () => {
    expect(readDetailedHealth('OK')).toBeUndefined();
    expect(readDetailedHealth('')).toBeUndefined();
    expect(readDetailedHealth('[{"status":"up"}]')).toBeUndefined();
    expect(readDetailedHealth(JSON.stringify({ uptime: 12, version: '1.2.3' }))).toBeUndefined();
  });
});

describe('statuses', () => {
  it('are ok, degraded or down whatever their case; an unknown word is down', () => {
    expect(['UP', 'pass', 'Healthy', 'green', 'operational'].map(classifyStatus)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(['WARN', 'degraded', 'partially_available', 'unknown'].map(classifyStatus)).toEqual(['degraded', 'degraded', 'degraded', 'degraded']);
    expect(['DOWN', 'fail', 'OUT_OF_SERVICE', 'on fire'].map(classifyStatus)).toEqual(['down', 'down', 'down', 'down']);
  });

  it('combine to the worst of them, ok for none', () => {
    expect(worstClass([])).toBe('ok');
    expect(worstClass(['UP', 'warn'])).toBe('degraded');
    expect(worstClass(['warn', 'DOWN', 'UP'])).toBe('down');
  });
});
