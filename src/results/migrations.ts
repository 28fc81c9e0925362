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
  {
    version: 2,
    name: 'alerts, notifier failures, missed runs',
    sql: `
      -- One row per problem that alerts: (task, target, code, subject). Several
      -- workers agree through this table: the alert goes out once, again only
      -- after the repeat interval, and a "resolved" message when it clears.
      CREATE TABLE caretaker.alerts (
        task          text NOT NULL,
        target        text NOT NULL,
        code          text NOT NULL,
        subject       text NOT NULL,
        severity      text NOT NULL,
        message       text NOT NULL,
        opened_at     timestamptz NOT NULL,
        last_sent_at  timestamptz,
        resolved_at   timestamptz,
        last_job_id   text,
        PRIMARY KEY (task, target, code, subject)
      );
      CREATE INDEX alerts_open_idx ON caretaker.alerts (task, target) WHERE resolved_at IS NULL;

      -- A notifier that failed (SMTP down, webhook 500): shown in /health and the report.
      CREATE TABLE caretaker.notifier_failures (
        id         bigserial PRIMARY KEY,
        channel    text NOT NULL,
        error      text NOT NULL,
        failed_at  timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX notifier_failures_failed_at_idx ON caretaker.notifier_failures (failed_at);

      -- A scheduled (task, target) with no completed run for its period plus grace.
      CREATE TABLE caretaker.missed_runs (
        id           bigserial PRIMARY KEY,
        schedule     text NOT NULL,
        task         text NOT NULL,
        target       text NOT NULL,
        due_at       timestamptz NOT NULL,
        detected_at  timestamptz NOT NULL DEFAULT now(),
        caught_up    boolean NOT NULL DEFAULT false,
        UNIQUE (schedule, task, target, due_at)
      );
      CREATE INDEX missed_runs_detected_at_idx ON caretaker.missed_runs (detected_at);
    `,
  },
  {
    version: 3,
    name: 'runs keyed by job id and creation time',
    sql: `
      -- BullMQ numbers jobs with a counter in Redis: a Redis that lost its data
      -- starts again at 1, and a new job would share an old job's id. A run is
      -- the job id plus the job's creation time; retries keep both.
      ALTER TABLE caretaker.runs ADD COLUMN job_key text;
      UPDATE caretaker.runs SET job_key = job_id WHERE job_id IS NOT NULL;
      ALTER TABLE caretaker.runs DROP CONSTRAINT runs_job_id_key;
      CREATE UNIQUE INDEX runs_job_key_idx ON caretaker.runs (job_key);
      CREATE INDEX runs_job_id_idx ON caretaker.runs (job_id);
    `,
  },
  {
    version: 4,
    name: 'alert routes, silences, waivers',
    sql: `
      -- Each alert remembers the channels its route chose (its "resolved"
      -- message and its re-posts go there) and, while a silence or a
      -- maintenance window holds it back, why: it is sent when the hold ends.
      ALTER TABLE caretaker.alerts
        ADD COLUMN channels        text[] NOT NULL DEFAULT '{}',
        ADD COLUMN repeat_seconds  integer,
        ADD COLUMN suggestion      text,
        ADD COLUMN held_by         text;
      CREATE INDEX alerts_held_idx ON caretaker.alerts (opened_at) WHERE held_by IS NOT NULL AND resolved_at IS NULL;

      -- A silence: matching problems do not notify from starts_at to ends_at.
      -- NULL matchers match anything; values may be globs (* and ?).
      CREATE TABLE caretaker.silences (
        id          bigserial PRIMARY KEY,
        task        text,
        target      text,
        code        text,
        subject     text,
        starts_at   timestamptz NOT NULL,
        ends_at     timestamptz NOT NULL,
        reason      text NOT NULL,
        created_by  text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expired_by  text,
        CHECK (ends_at > starts_at)
      );
      CREATE INDEX silences_ends_at_idx ON caretaker.silences (ends_at);

      -- An accepted finding: it leaves alerts and the report's open list until
      -- it expires, is removed, or its severity rises above the one accepted.
      CREATE TABLE caretaker.waivers (
        id          bigserial PRIMARY KEY,
        task        text NOT NULL,
        target      text NOT NULL,
        code        text NOT NULL,
        subject     text NOT NULL,
        severity    text NOT NULL,
        reason      text NOT NULL,
        created_by  text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz,
        removed_at  timestamptz,
        removed_by  text
      );
      CREATE INDEX waivers_live_idx ON caretaker.waivers (task, target) WHERE removed_at IS NULL;
    `,
  },
  {
    version: 5,
    name: 'checklist',
    sql: `
      -- Who marked a checklist item (a manual runbook line) done, when, and why.
      CREATE TABLE caretaker.checklist_done (
        id       bigserial PRIMARY KEY,
        item     text NOT NULL,
        done_at  timestamptz NOT NULL,
        done_by  text NOT NULL,
        note     text
      );
      CREATE INDEX checklist_done_item_idx ON caretaker.checklist_done (item, done_at DESC);
      CREATE INDEX checklist_done_at_idx ON caretaker.checklist_done (done_at);

      -- When caretaker first saw each item: a new item is due from the period it appeared in.
      CREATE TABLE caretaker.checklist_items (
        item           text PRIMARY KEY,
        first_seen_at  timestamptz NOT NULL
      );
    `,
  },
];
