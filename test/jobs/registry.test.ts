import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TASKS } from '../../src/jobs';
import { RUNBOOK_TASKS } from '../../src/schedules/catalog';

const JOBS_DIR = join(__dirname, '../../src/jobs');

describe('task registry', () => {
  const files = readdirSync(JOBS_DIR)
    // `<task>.sql.ts` holds a task's SQL when its file would grow too long.
    .filter((f) => f.endsWith('.ts') && f !== 'index.ts' && !f.endsWith('.sql.ts'))
    .map((f) => f.replace(/\.ts$/, ''));

  it('registers every file in src/jobs/, under the file name', () => {
    expect(files.length).toBeGreaterThan(0);
    expect([...TASKS.keys()].sort()).toEqual([...files].sort());
  });

  it('gives every task the full contract', () => {
    for (const task of TASKS.values()) {
      expect(task.name).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(task.description.length).toBeGreaterThan(10);
      expect(task.timeoutMs).toBeGreaterThan(0);
      expect(['hourly', 'daily', 'weekly', 'monthly', 'report']).toContain(task.defaultSchedule);
      expect(typeof task.prepare).toBe('function');
      // Defaults alone must make valid params: a task runs without any config.
      expect(task.params.safeParse({}).success).toBe(true);
      // Every task is one of the runbook's, so the catalog schedules it.
      expect(Object.keys(RUNBOOK_TASKS)).toContain(task.name);
    }
  });

  it('declares every finding code with one line of meaning', () => {
    for (const task of TASKS.values()) {
      for (const [code, meaning] of Object.entries(task.codes)) {
        expect(`${task.name}: ${code}`).toMatch(/: [a-z][a-z0-9_]*$/);
        expect(`${task.name}: ${code}: ${meaning}`).toMatch(/: \S[^\n]{9,119}$/);
      }
    }
  });

  it("lists in the README's task table exactly the codes each task declares", () => {
    const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## What it does'), readme.indexOf('\n\n', readme.indexOf('| task |')));
    const listed = new Map<string, { codes: string[]; alsoOf?: string }>();
    for (const row of table.split('\n').filter((line) => /^\| `[a-z0-9-]+` \|/.test(line))) {
      const cells = row.split('|').map((c) => c.trim());
      const name = cells[1]!.replace(/`/g, '');
      const last = cells.at(-2)!;
      // "and restore-test's": dr-drill raises restore-test's codes as its own.
      const alsoOf = /and `?([a-z0-9-]+)`?'s$/.exec(last)?.[1];
      listed.set(name, { codes: [...last.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!), alsoOf });
    }
    expect([...listed.keys()].sort()).toEqual([...TASKS.keys()].sort());
    for (const task of TASKS.values()) {
      const row = listed.get(task.name)!;
      const expected = new Set([...row.codes, ...(row.alsoOf ? Object.keys(TASKS.get(row.alsoOf)?.codes ?? { [`unknown task ${row.alsoOf}`]: '' }) : [])]);
      expect({ task: task.name, codes: [...expected].sort() }).toEqual({ task: task.name, codes: Object.keys(task.codes).sort() });
    }
  });
});
