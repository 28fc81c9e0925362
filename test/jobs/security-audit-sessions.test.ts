/**
 * security-audit across many targets on one server holds one session at a
 * time: each is closed as soon as its target is audited. The targets log in
 * as a role whose CONNECTION LIMIT is 2: had every session stayed open until
 * the run ended, the third target would be `audit_incomplete` ("too many
 * connections for role").
 */
import { securityAudit } from '../../src/jobs/security-audit';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { runOn } from '../support/run-on';

const role = randomRoleName('audit_limit');
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('audit_sessions');
  await db.pool.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2`);
});

afterAll(async () => {
  await db?.drop();
  await dropRoles(role);
});

it('audits 12 targets on one server as a role allowed 2 sessions, with no audit_incomplete', async () => {
  const targets = Array.from({ length: 12 }, (_, i) => ({ name: `t${i}`, url: urlFor(db.name, role) }));
  const result = await runOn(securityAudit, 'caretaker', { postgres: targets }, { kinds: ['postgres'] });
  // The role is no superuser: some checks say they could not look (audit_incomplete with a check). None says a target was not audited.
  expect(result.findings.filter((f) => f.code === 'audit_incomplete' && f.message.startsWith('cannot audit postgres target'))).toEqual([]);
  expect(result.metrics).toMatchObject({ security_targets_audited: 12, security_targets_failed: 0 });
  // And nothing of the run is left on the server.
  const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [role]);
  expect(rows[0]!.n).toBe(0);
});
