import { Writable } from 'node:stream';
import { cli } from '../../src/cli';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** Runs the real CLI in-process with captured output and the given environment. */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await cli(['node', 'caretaker', ...args], { stdout, stderr, env: { CARETAKER_LOG_LEVEL: 'silent', ...env } });
  return { code, stdout: stdout.text, stderr: stderr.text };
}
