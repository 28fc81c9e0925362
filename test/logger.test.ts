import { createLogger, redactSecretsIn, redactUrl } from '../src/logger';

function capture() {
  const lines: string[] = [];
  return { lines, stream: { write: (s: string) => void lines.push(s) } };
}

describe('logger', () => {
  it('writes JSON and redacts secrets by key, also nested', () => {
    const out = capture();
    const log = createLogger('info', out.stream).child({ task: 'connections', target: 'main', jobId: '7' });
    log.info({ url: 'postgres://app:hunter2@db/app', password: 'hunter2', smtp: { password: 'hunter2' }, web: { auth: { admin: 'a:hunter2' } } }, 'hello');
    expect(out.lines).toHaveLength(1);
    const line = JSON.parse(out.lines[0]!);
    expect(line).toMatchObject({ msg: 'hello', task: 'connections', target: 'main', jobId: '7', url: '[redacted]', password: '[redacted]' });
    expect(out.lines[0]).not.toContain('hunter2');
  });

  it('hides the password of a URL, and of URLs inside driver messages', () => {
    expect(redactUrl('postgres://app:hunter2@db:5432/app?sslpassword=x')).toBe('postgres://app:***@db:5432/app?sslpassword=***');
    expect(redactUrl('not a url')).toBe('[unparsable url]');
    expect(redactSecretsIn('connect to redis://default:hunter2@cache:6379 failed')).toBe('connect to redis://default:***@cache:6379 failed');
  });
});
