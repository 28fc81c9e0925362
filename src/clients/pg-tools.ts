/**
 * The PostgreSQL client tools (pg_dump, pg_restore, psql) as child
 * processes: a connection without the password in argv, caretaker's
 * application name, and a clear error when a tool is not installed.
 */
import { spawn } from 'node:child_process';
import { APPLICATION_NAME } from './postgres';

/**
 * A libpq connection for a client tool: the URL without its password (argv
 * is visible to every user of the machine in `ps`), the password in the
 * child's environment, and caretaker's application name so the connections
 * task never takes the tool's session for an idle client of the application.
 */
export function toolConnection(url: string, tool: string): { url: string; env: NodeJS.ProcessEnv } {
  const parsed = new URL(url);
  // The child keeps caretaker's environment (PATH, locale, PGSSL* settings) plus these.
  const env: NodeJS.ProcessEnv = { ...process.env, PGAPPNAME: `${APPLICATION_NAME} ${tool}`, PGCONNECT_TIMEOUT: '10' };
  let password = parsed.password ? decodeURIComponent(parsed.password) : undefined;
  parsed.password = '';
  const inQuery = parsed.searchParams.get('password');
  if (inQuery !== null) {
    password = inQuery;
    parsed.searchParams.delete('password');
  }
  if (password !== undefined) env.PGPASSWORD = password;
  return { url: parsed.toString(), env };
}

/** The error a task reports when a PostgreSQL client tool is not on the machine. */
export function toolMissing(tool: string, command: string): Error {
  const where = command === tool ? '' : ` (${command})`;
  return new Error(`${tool} not found${where}: install the PostgreSQL client`);
}

/** `pg_dump --version` (etc.): the tool's version line; a clear error when it is not installed. */
export function toolVersion(tool: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' || err.code === 'EACCES' ? toolMissing(tool, command) : err));
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${command} --version exited ${code}`))));
  });
}

