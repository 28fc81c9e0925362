/**
 * A real npm registry for tests: verdaccio 6.8.0 (a devDependency) on a
 * free port with a temp storage and htpasswd file and no uplinks, so it
 * never leaves the machine. Packages are published with the real npm CLI
 * (`npm publish`, `npm deprecate`) as a user created through the registry's
 * own adduser API. Packages under `privateScope` can be read only with a
 * token (`access: $authenticated`). Stopped and removed after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually } from './jobs';
import { freePort } from './ports';
import { stopChild } from './child-process';

const VERDACCIO = path.join(__dirname, '../../node_modules/.bin/verdaccio');
const READY_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** npm publish on this machine takes about a second; a minute means it hangs. */
const NPM_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

export interface TestNpmRegistry {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  port: number;
  /** The scope whose packages need a token to be read (`@private`). */
  privateScope: string;
  /** The token of the user that publishes (created at start). */
  publisherToken: string;
  /** Creates a user through `PUT /-/user/org.couchdb.user:NAME` and returns the token the registry hands back. */
  createUser(name: string): Promise<string>;
  /** `npm publish` of a minimal package; a prerelease needs a `tag` (npm refuses to make it `latest`). */
  publish(name: string, version: string, opts?: { tag?: string }): Promise<void>;
  /** `npm deprecate name@version message`. */
  deprecate(name: string, version: string, message: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startNpmRegistry(opts: { privateScope?: string } = {}): Promise<TestNpmRegistry> {
  const privateScope = opts.privateScope ?? '@private';
  const dir = await mkdtemp(path.join(tmpdir(), 'caretaker-verdaccio-'));
  const config = {
    storage: path.join(dir, 'storage'),
    auth: { htpasswd: { file: path.join(dir, 'htpasswd'), max_users: 100 } },
    uplinks: {},
    packages: {
      [`${privateScope}/*`]: { access: '$authenticated', publish: '$authenticated' },
      '**': { access: '$all', publish: '$authenticated' },
    },
    web: { enable: false },
    log: { type: 'stdout', format: 'json', level: 'warn' },
  };
  // YAML is a superset of JSON.
  await writeFile(path.join(dir, 'config.yaml'), JSON.stringify(config, null, 2));
  await writeFile(path.join(dir, 'npmrc'), '');

  let lastError: Error | undefined;
  // Another process may take the free port between our check and verdaccio binding it: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(process.execPath, [VERDACCIO, '--config', path.join(dir, 'config.yaml'), '--listen', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: dir },
    });
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const url = `http://127.0.0.1:${port}/`;
    try {
      await eventually(
        async () => {
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`verdaccio exited (${child.exitCode ?? child.signalCode}): ${output.trim()}`);
          const res = await fetch(`${url}-/ping`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch(() => undefined);
          await res?.arrayBuffer().catch(() => undefined);
          return res?.status === 200 ? true : undefined;
        },
        READY_TIMEOUT_MS,
        'verdaccio to answer /-/ping',
      );
      return await handle({ url, port, dir, child, privateScope });
    } catch (err) {
      lastError = err as Error;
      await stopChild(child, STOP_GRACE_MS);
      if (!/EADDRINUSE|address already in use/.test(output)) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error('verdaccio did not start');
}

async function handle(h: { url: string; port: number; dir: string; child: ChildProcess; privateScope: string }): Promise<TestNpmRegistry> {
  const createUser = async (name: string): Promise<string> => {
    const res = await fetch(`${h.url}-/user/org.couchdb.user:${encodeURIComponent(name)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, password: randomBytes(12).toString('hex') }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = (await res.json().catch(() => ({}))) as { token?: unknown };
    if (res.status !== 201 || typeof body.token !== 'string') throw new Error(`creating user ${name}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body.token;
  };
  const publisherToken = await createUser('publisher');

  /** npm with only this registry, no user config, its own cache, and no update check. */
  const npm = (args: string[], cwd: string) =>
    run(
      'npm',
      [...args, '--registry', h.url, `--//127.0.0.1:${h.port}/:_authToken=${publisherToken}`, '--userconfig', path.join(h.dir, 'npmrc'), '--cache', path.join(h.dir, 'npm-cache'), '--loglevel', 'warn'],
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: h.dir, NO_UPDATE_NOTIFIER: '1', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } },
    );

  let published = 0;
  return {
    url: h.url,
    port: h.port,
    privateScope: h.privateScope,
    publisherToken,
    createUser,
    async publish(name, version, opts = {}) {
      const pkgDir = path.join(h.dir, 'packages', String(published++));
      await mkdir(pkgDir, { recursive: true });
      await writeFile(path.join(pkgDir, 'package.json'), JSON.stringify({ name, version, description: 'a test package', license: 'MIT', main: 'index.js' }, null, 2));
      await writeFile(path.join(pkgDir, 'index.js'), `module.exports = ${JSON.stringify(version)};\n`);
      await npm(['publish', ...(opts.tag ? ['--tag', opts.tag] : [])], pkgDir);
    },
    async deprecate(name, version, message) {
      await npm(['deprecate', `${name}@${version}`, message], h.dir);
    },
    async stop() {
      await stopChild(h.child);
      await rm(h.dir, { recursive: true, force: true });
    },
  };
}

/** Runs a command to its end, bounded; rejects with its output when it fails. */
function run(command: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), NPM_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args[0]} failed (${code ?? signal}): ${output.trim().slice(-2_000)}`));
    });
  });
}

