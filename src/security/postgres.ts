/**
 * security-audit on a PostgreSQL target: superusers, login roles without a
 * password or without password expiry, CREATE on a schema for PUBLIC, and
 * databases anyone may connect to. Roles are server-wide (a superuser of the
 * server is one in every database); schemas are those of the connected
 * database, and so are databases unless the target says `allDatabases`: a
 * server shared by several tenants must not report on the others' databases.
 * Five catalog queries at most, whatever the number of roles; reads only.
 */
import type { Client } from 'pg';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { AUDIT_INCOMPLETE, AUDIT_INCOMPLETE_CODES, countsByCode, type AuditIncomplete, type AuditResult } from './audit';

/** The codes of this check's findings, besides audit_incomplete; security-audit declares them. */
export const POSTGRES_CODES = {
  superuser_role: 'a superuser role not listed in `allowedSuperusers`',
  login_without_password: 'a login role with no password, not in `passwordExemptRoles` (checked when pg_authid is readable)',
  password_no_expiry: 'a login role whose password never expires (no VALID UNTIL); a warning with `requirePasswordExpiry`',
  public_schema_create: 'a schema of the database where PUBLIC may CREATE: anyone can plant objects on search_path',
  database_connect_public: "a database PUBLIC may connect to: the target's own, or all of the server's with allDatabases",
} satisfies FindingCodes;
type PostgresCode = keyof typeof POSTGRES_CODES | AuditIncomplete;

export const SQL = {
  /** Superusers and login roles; `infinity` counts as no expiry (pg would return it as a number). */
  roles: `
    SELECT rolname AS name, rolsuper AS superuser, rolcanlogin AS "canLogin",
           rolvaliduntil IS NULL OR rolvaliduntil = 'infinity' AS "noExpiry",
           CASE WHEN rolvaliduntil = 'infinity' THEN NULL ELSE rolvaliduntil END AS "validUntil"
    FROM pg_catalog.pg_roles
    WHERE rolsuper OR rolcanlogin
    ORDER BY rolname`,
  /** Whether this session may read password hashes' presence (superuser only, unless granted). */
  authidReadable: `SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS readable`,
  /** Login roles with no password at all; reads only whether the hash is NULL, never the hash. */
  loginWithoutPassword: `
    SELECT rolname AS name FROM pg_catalog.pg_authid
    WHERE rolcanlogin AND rolpassword IS NULL
    ORDER BY rolname`,
  /** Schemas of this database where PUBLIC (every role) may CREATE: the search_path attack of CVE-2018-1058. */
  publicCreate: `
    SELECT n.nspname AS schema, pg_catalog.pg_get_userbyid(n.nspowner) AS owner
    FROM pg_catalog.pg_namespace n
    WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      AND has_schema_privilege('public', n.oid, 'CREATE')
    ORDER BY n.nspname`,
  /** Databases every role may connect to (PostgreSQL's default): the connected one, or all of the server's when $1. */
  publicConnect: `
    SELECT datname AS name FROM pg_catalog.pg_database
    WHERE datallowconn AND NOT datistemplate AND has_database_privilege('public', oid, 'CONNECT')
      AND ($1::boolean OR datname = current_database())
    ORDER BY datname`,
} as const;

/** What the postgres check needs from security-audit's params. */
export interface PostgresAuditOptions {
  /** Superusers that are expected (the bootstrap superuser): not reported. */
  allowedSuperusers: readonly string[];
  /** Roles that log in without a password on purpose (peer, cert) or whose password policy lives elsewhere. */
  passwordExemptRoles: readonly string[];
  /** When true, a login role without VALID UNTIL is a warning; else info. */
  requirePasswordExpiry: boolean;
  /** Look at every database of the server for database_connect_public, not only the connected one. Default false. */
  allDatabases?: boolean;
  /** For the example date in suggestions; default now. */
  now?: Date;
}

interface RoleRow {
  name: string;
  superuser: boolean;
  canLogin: boolean;
  noExpiry: boolean;
  validUntil: Date | null;
}

/** Audits the server and database `client` is connected to. Throws only when a query fails. */
export async function auditPostgres(client: Client, opts: PostgresAuditOptions): Promise<AuditResult<PostgresCode>> {
  const findings: Finding<PostgresCode>[] = [];
  const q = (name: string) => client.escapeIdentifier(name);
  const roles = (await client.query<RoleRow>(SQL.roles)).rows;

  for (const r of roles.filter((r) => r.superuser && !opts.allowedSuperusers.includes(r.name))) {
    findings.push({
      severity: 'warning',
      code: 'superuser_role',
      subject: `role ${r.name}`,
      message: `role ${r.name} is a superuser${r.canLogin ? ' and can log in' : ' (NOLOGIN, but its members can SET ROLE to it)'}`,
      suggestion: `ALTER ROLE ${q(r.name)} NOSUPERUSER; then grant only what it needs (pg_monitor, pg_read_all_data, ownership of its objects), or list it in allowedSuperusers if it must stay one`,
      details: { role: r.name, canLogin: r.canLogin },
    });
  }

  const readable = (await client.query<{ readable: boolean }>(SQL.authidReadable)).rows[0]!.readable;
  let passwordless = new Set<string>();
  if (readable) {
    passwordless = new Set((await client.query<{ name: string }>(SQL.loginWithoutPassword)).rows.map((r) => r.name));
    for (const name of [...passwordless].filter((n) => !opts.passwordExemptRoles.includes(n))) {
      findings.push({
        severity: 'warning',
        code: 'login_without_password',
        subject: `role ${name}`,
        message: `role ${name} can log in and has no password: it authenticates only by pg_hba methods that need none (trust, peer, cert), and under trust anyone who reaches the server is ${name}`,
        suggestion: `ALTER ROLE ${q(name)} PASSWORD '...' (or NOLOGIN if nobody should log in as it); make sure pg_hba.conf has no trust lines for it; list it in passwordExemptRoles if it uses peer or cert on purpose`,
        details: { role: name },
      });
    }
  } else {
    findings.push({
      severity: 'info',
      code: AUDIT_INCOMPLETE,
      subject: 'pg_authid',
      message: 'cannot check for login roles without a password: only a superuser can read pg_authid',
      suggestion: 'Run security-audit as a superuser on this target to include that check, or check by hand: SELECT rolname FROM pg_authid WHERE rolcanlogin AND rolpassword IS NULL',
      details: { check: 'login_without_password' },
    });
  }

  const example = new Date((opts.now ?? new Date()).getTime() + 90 * 86_400_000).toISOString().slice(0, 10);
  const noExpiry = roles.filter((r) => r.canLogin && r.noExpiry && !passwordless.has(r.name) && !opts.passwordExemptRoles.includes(r.name));
  for (const r of noExpiry) {
    findings.push({
      severity: opts.requirePasswordExpiry ? 'warning' : 'info',
      code: 'password_no_expiry',
      subject: `role ${r.name}`,
      message: `login role ${r.name} has a password that never expires (no VALID UNTIL)${opts.requirePasswordExpiry ? ', and the policy requires one' : ''}`,
      suggestion: `Rotate its password on a schedule: ALTER ROLE ${q(r.name)} PASSWORD '...' VALID UNTIL '${example}'`,
      details: { role: r.name, superuser: r.superuser },
    });
  }

  for (const s of (await client.query<{ schema: string; owner: string }>(SQL.publicCreate)).rows) {
    findings.push({
      severity: 'warning',
      code: 'public_schema_create',
      subject: `schema ${s.schema}`,
      message: `every role (PUBLIC) may CREATE objects in schema ${s.schema}: any user can plant functions or tables that others pick up through search_path`,
      suggestion: `REVOKE CREATE ON SCHEMA ${q(s.schema)} FROM PUBLIC; then GRANT CREATE ON SCHEMA ${q(s.schema)} TO the roles that own the application's objects`,
      details: { schema: s.schema, owner: s.owner },
    });
  }

  for (const d of (await client.query<{ name: string }>(SQL.publicConnect, [opts.allDatabases ?? false])).rows) {
    findings.push({
      severity: 'info',
      code: 'database_connect_public',
      subject: `database ${d.name}`,
      message: `every role (PUBLIC) may connect to database ${d.name} (PostgreSQL's default)`,
      suggestion: `REVOKE CONNECT ON DATABASE ${q(d.name)} FROM PUBLIC; GRANT CONNECT ON DATABASE ${q(d.name)} TO the roles that use it`,
      details: { database: d.name },
    });
  }

  return {
    findings,
    metrics: {
      ...countsByCode({ ...POSTGRES_CODES, ...AUDIT_INCOMPLETE_CODES }, findings),
      postgres_login_roles: roles.filter((r) => r.canLogin).length,
      postgres_superusers: roles.filter((r) => r.superuser).length,
    },
  };
}
