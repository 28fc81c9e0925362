/**
 * The layers of src/, bottom to top, as the README's Developing section
 * draws them: nothing imports in a circle, and the bottom (the contract, the
 * config's types and checks, small utilities) imports nothing above it, so a
 * reader opens the contract without scheduling, clients or S3 coming along.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SRC, importCircles, importGraph } from './imports';

/** The bottom layer: what every task and role may lean on. */
const BOTTOM = [/^contract\//, /^config\/(?!load\.ts$)/, /^util\//, /^errors\.ts$/, /^logger\.ts$/];
const inBottom = (file: string) => BOTTOM.some((re) => re.test(file));

describe('layers of src/', () => {
  const graph = importGraph();

  it('has no import circle, type imports included', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(importCircles(graph)).toEqual([]);
  });

  it('keeps the contract, the config and the utilities at the bottom', () => {
    const upward = [...graph].flatMap(([file, imports]) => (inBottom(file) ? imports.filter((i) => !inBottom(i)).map((i) => `${file} → ${i}`) : []));
    expect(upward).toEqual([]);
  });

  it('keeps the restore engine out of the tasks (src/backups/ imports nothing of src/jobs/)', () => {
    const reaching = [...graph].flatMap(([file, imports]) => (file.startsWith('backups/') ? imports.filter((i) => i.startsWith('jobs/')).map((i) => `${file} → ${i}`) : []));
    expect(reaching).toEqual([]);
  });

  it('gives only the config loader the environment', () => {
    // The roles and commands get their settings from the loaded config: a module reading a
    // variable itself would make a setting that the config, the README and check-config do not know.
    const code = (file: string) => readFileSync(join(SRC, file), 'utf8').replace(/\/\/.*|\/\*[\s\S]*?\*\//g, '');
    const readsNamedVariable = (file: string) => /\benv(?:\?\.|\.|\[\s*['"`])[A-Z][A-Z0-9_]*\b(?!['"`\]]*\s*=[^=])/.test(code(file));
    expect([...graph.keys()].filter((f) => !f.startsWith('config/') && readsNamedVariable(f))).toEqual([]);
    // process.env itself: the CLI's io hands it to the loader, pg-tools hands it on to pg_dump's child process.
    expect([...graph.keys()].filter((f) => /\bprocess\.env\b/.test(code(f))).sort()).toEqual(['clients/pg-tools.ts', 'commands/io.ts']);
  });
});
