/**
 * `npm start`'s build step on a small project of the test's own (the script
 * copied beside a tsconfig, a src/ and the repository's TypeScript): it
 * builds the first time, skips while nothing changed, and builds again when
 * a source is edited or a file is added.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(__dirname, '../..');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ct-build-'));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'src'));
  copyFileSync(join(REPO, 'scripts/build-if-changed.js'), join(dir, 'scripts/build-if-changed.js'));
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'tiny', private: true }));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'commonjs', target: 'ES2022', rootDir: '.', outDir: 'dist', types: [] }, include: ['src/**/*.ts'] }));
  writeFileSync(join(dir, 'src/cli.ts'), 'export const answer: number = 42;\n');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the script; true when it built (the output's time moved). */
function build(): boolean {
  const out = join(dir, 'dist/src/cli.js');
  const before = existsSync(out) ? statSync(out).mtimeMs : -1;
  const run = spawnSync(process.execPath, [join(dir, 'scripts/build-if-changed.js')], { cwd: dir, encoding: 'utf8' });
  expect([run.status, run.stderr]).toEqual([0, '']);
  return statSync(out).mtimeMs !== before;
}

/** Moves a file's time forward, as saving it would (file systems with coarse times would hide a quick edit). */
const touch = (file: string, secondsAhead: number) => utimesSync(file, new Date(Date.now() + secondsAhead * 1000), new Date(Date.now() + secondsAhead * 1000));

it('builds the first time, skips while nothing changed, builds again after an edit or a new file', () => {
  expect(build()).toBe(true);
  expect(readFileSync(join(dir, 'dist/src/cli.js'), 'utf8')).toContain('42');
  expect(build()).toBe(false);

  writeFileSync(join(dir, 'src/cli.ts'), 'export const answer: number = 43;\n');
  touch(join(dir, 'src/cli.ts'), 5);
  expect(build()).toBe(true);
  expect(readFileSync(join(dir, 'dist/src/cli.js'), 'utf8')).toContain('43');
  expect(build()).toBe(false);

  writeFileSync(join(dir, 'src/extra.ts'), 'export const extra = 1;\n');
  touch(join(dir, 'src/extra.ts'), 10);
  expect(build()).toBe(true);
  expect(existsSync(join(dir, 'dist/src/extra.js'))).toBe(true);
});
