import { Writable } from 'node:stream';
import { createLogger, redactSecretsIn, redactUrl, scrubSecrets, secretsOfUrl } from '../src/logger';
import { humanLine, humanLogStream } from '../src/commands/human-log';

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

  it('knows the secrets a URL carries: its password and secret-named query values, decoded and as written', () => {
    expect(secretsOfUrl('postgres://app:p%40ss%2Fw0rd@db/app?sslmode=require&sslpassword=k3y')).toEqual(['p%40ss%2Fw0rd', 'p@ss/w0rd', 'k3y']);
    expect(secretsOfUrl('https://api.example.com/health?api_key=a+b%2Fc&format=json&flag')).toEqual(['a+b%2Fc', 'a b/c', 'a%20b%2Fc']);
    expect(secretsOfUrl('https://api.example.com/health')).toEqual([]);
    expect(secretsOfUrl('not a url')).toEqual([]);
    expect(secretsOfUrl(undefined)).toEqual([]);
  });

  it('scrubs known secrets from text a server sent back, longest first, leaving values too short to matter', () => {
    const secrets = ['hunter2', 'hunter2-and-more', undefined, 'ab'];
    expect(scrubSecrets('401: Bearer hunter2-and-more rejected; retry with hunter2 (about ab)', secrets)).toBe('401: Bearer *** rejected; retry with *** (about ab)');
    expect(scrubSecrets('nothing here', [])).toBe('nothing here');
  });
});

describe('human log form', () => {
  function human(omit?: string[]) {
    let text = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        text += chunk.toString();
        done();
      },
    });
    return { stream: humanLogStream(out, { omit }), text: () => text };
  }

  it('writes one readable line per entry: level, message, fields; the context the command names left out', () => {
    const out = human(['task', 'target']);
    const log = createLogger('info', out.stream).child({ task: 'connections', target: 'main' });
    log.warn({ err: 'connect ECONNREFUSED 127.0.0.1:1' }, 'redis unreachable: running without the per-target lock');
    log.error({ attempts: 3, roles: ['app'] }, 'gave up');
    log.info('fine');
    expect(out.text()).toBe(
      [
        'caretaker: warning: redis unreachable: running without the per-target lock (err=connect ECONNREFUSED 127.0.0.1:1)',
        'caretaker: error: gave up (attempts=3, roles=["app"])',
        'caretaker: info: fine',
        '',
      ].join('\n'),
    );
  });

  it('keeps what the JSON form redacts redacted, and hides a password in a message', () => {
    const out = human();
    const log = createLogger('info', out.stream);
    log.warn({ url: 'postgres://app:hunter2@db/app', password: 'hunter2', smtp: { password: 'hunter2' }, web: { auth: { admin: 'a:hunter2' } } }, 'connect to postgres://app:hunter2@db/app failed');
    expect(out.text()).not.toContain('hunter2');
    expect(out.text()).toMatch(/^caretaker: warning: connect to postgres:\/\/app:\*\*\*@db\/app failed \(url=\[redacted\], password=\[redacted\], smtp={"password":"\[redacted\]"}/);
  });

  it('shows an Error by its message, never its stack, and stays one line whatever the text holds', () => {
    const out = human();
    const log = createLogger('info', out.stream);
    log.warn({ err: new Error('first\nsecond') }, 'two\nlines');
    expect(out.text()).toBe('caretaker: warning: two lines (err=first second)\n');
    expect(humanLine('not json')).toBe('caretaker: not json');
  });
});
