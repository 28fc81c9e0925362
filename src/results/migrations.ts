/**
 * The state database's schema, as numbered migrations. Applied in order,
 * each once, inside one transaction holding an advisory lock, so replicas
 * starting together do not race. Never edit a released migration: add one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs and findings',
    sql: `
      CREATE TABLE caretaker.runs (
        id          bigserial PRIMARY KEY,
        -- BullMQ job id; unique so a retried or re-delivered job is stored once.
        -- NULL for runs started from the CLI.
        job_id      text UNIQUE,
        task        text NOT NULL,
        target      text NOT NULL,
        schedule    text,
        status      text NOT NULL CHECK (status IN ('ok', 'warning', 'critical', 'error')),
        skipped     boolean NOT NULL DEFAULT false,
        dry_run     boolean NOT NULL,
        attempt     integer NOT NULL DEFAULT 1,
        started_at  timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        duration_ms integer NOT NULL,
        summary     text NOT NULL,
        result      jsonb NOT NULL
      );
      CREATE INDEX runs_finished_at_idx ON caretaker.runs (finished_at);
      CREATE INDEX runs_task_target_finished_at_idx ON caretaker.runs (task, target, finished_at DESC);

      CREATE TABLE caretaker.findings (
        id         bigserial PRIMARY KEY,
        run_id     bigint NOT NULL REFERENCES caretaker.runs (id) ON DELETE CASCADE,
        task       text NOT NULL,
        target     text NOT NULL,
        severity   text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        code       text NOT NULL,
        subject    text NOT NULL,
        message    text NOT NULL,
        suggestion text,
        details    jsonb,
        found_at   timestamptz NOT NULL
      );
      -- Reports read findings by time window and severity, and follow one
      -- finding (task, target, code, subject) across weeks.
      CREATE INDEX findings_found_at_severity_idx ON caretaker.findings (found_at, severity);
      CREATE INDEX findings_identity_idx ON caretaker.findings (task, target, code, subject, found_at);
      CREATE INDEX findings_run_id_idx ON caretaker.findings (run_id);
    `,
  },
];
