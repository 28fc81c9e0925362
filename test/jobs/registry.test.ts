import { readdirSync } from 'node:fs';
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
      expect(['daily', 'weekly', 'monthly', 'report']).toContain(task.defaultSchedule);
      expect(typeof task.run).toBe('function');
      // Defaults alone must make valid params: a task runs without any config.
      expect(task.params.safeParse({}).success).toBe(true);
      // Every task is one of the runbook's, so the catalog schedules it.
      expect(Object.keys(RUNBOOK_TASKS)).toContain(task.name);
    }
  });
});
