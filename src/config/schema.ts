/**
 * The config file's shape (the README's Configuration section), validated once at
 * start-up. Keys may be added freely; renaming one is a breaking change that
 * the README must announce.
 */
import { z } from 'zod';
import { isValidTimezone } from './cron-syntax';
import type { ResolvedAlerting } from './alerting';
import { channelName, channelSchema, maintenanceSchema, routeSchema, smtpSchema, waiverSchema } from './alerting-schema';

/** Names end up in scheduler ids, Redis keys and metric labels: keep them plain. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const name = z.string().regex(NAME, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');

const timezone = z.string().refine(isValidTimezone, { error: (i) => `${JSON.stringify(i.input)} is not a known IANA timezone` });

/** `user:password`, as in HTTP basic auth; empty (an unset `${VAR:-}`) means none. */
const credential = z.preprocess(
  (v) => (v === '' ? undefined : v),
  z.string().regex(/^[^:]+:.+$/, 'must be "user:password"').optional(),
);

const url = (protocols: string[]) =>
  z.string().refine(
    (s) => {
      try {
        return protocols.includes(new URL(s).protocol);
      } catch {
        return false;
      }
    },
    { error: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

const postgresUrl = url(['postgres:', 'postgresql:']);
const redisUrl = url(['redis:', 'rediss:']);
const httpUrl = url(['http:', 'https:']);

/** Per-task params under a target override the global `tasks:` section. */
const taskParams = z.record(z.string(), z.record(z.string(), z.unknown())).default({});

const postgresTarget = z.strictObject({
  name,
  url: postgresUrl,
  allow: z
    .strictObject({
      vacuum: z.boolean().default(false),
      terminateIdle: z.boolean().default(false),
    })
    .default({ vacuum: false, terminateIdle: false }),
  /** Bound on every statement caretaker sends: nothing caretaker runs may hold a target's server for long. */
  statementTimeoutMs: z.number().int().min(100).max(24 * 3600_000).default(30_000),
  /** Bound on waiting for any lock. */
  lockTimeoutMs: z.number().int().min(10).max(600_000).default(5_000),
  allDatabases: z.boolean().default(false), // security-audit reports on every database of the server, not only the target's own
  tasks: taskParams,
});

const redisTarget = z.strictObject({ name, url: redisUrl, tasks: taskParams });

/** Kubernetes namespaces and deployments are DNS labels. */
const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a Kubernetes name (lower-case letters, digits, "-")').max(63);

/** The monitored application's BullMQ queues, on one of the redis targets. */
const queuesTarget = z.strictObject({
  name,
  /** The redis target the queues live on. */
  redis: name,
  queues: z.array(z.string().min(1)).min(1),
  /** The application's BullMQ key prefix. */
  prefix: z.string().min(1).default('bull'),
  /** Queues that hold dead letters: any job in them is a finding. */
  deadLetterQueues: z.array(z.string().min(1)).default([]),
  allow: z
    .strictObject({
      /** The runbook's "clean old jobs": queue.clean of old completed and failed jobs. */
      clean: z.boolean().default(false),
    })
    .default({ clean: false }),
  tasks: taskParams,
});

const kubernetesTarget = z.strictObject({
  name,
  namespace: k8sName,
  /** The deployments k8s-health and error-logs watch (all in the namespace when empty). */
  deployments: z.array(k8sName).default([]),
  /** A kubeconfig file; default: in-cluster, then $KUBECONFIG / ~/.kube/config. */
  kubeconfig: z.string().min(1).optional(),
  allow: z
    .strictObject({
      /** Namespaces where dr-drill may delete a pod. Never any by default. */
      podKillNamespaces: z.array(k8sName).default([]),
    })
    .default({ podKillNamespaces: [] }),
  tasks: taskParams,
});

/** An HTTP service: its health URL, and optionally an authenticated detailed health URL. */
const httpTarget = z.strictObject({
  name,
  /** The health endpoint, e.g. https://api.example.com/health. */
  url: httpUrl,
  /** e.g. https://api.example.com/health/detailed, called with the token. */
  detailedUrl: httpUrl.optional(),
  /** Bearer token for detailedUrl: put "${VAR}" here, never the token itself. */
  token: z.string().min(1).optional(),
  tasks: taskParams,
});

const prometheusTarget = z.strictObject({
  name,
  url: httpUrl,
  /** Bearer token, when the Prometheus API sits behind auth ("${VAR}"). */
  token: z.string().min(1).optional(),
  tasks: taskParams,
});

/** An application's package-lock.json files, checked by dependency-check against the npm registry and known advisories. */
const lockfilesTarget = z.strictObject({
  name,
  /** Paths of package-lock.json files, or http(s) URLs of them (a raw file in a Git host). */
  files: z.array(z.string().min(1)).min(1),
  /** Bearer token for the URLs in `files` ("${VAR}"). */
  token: z.string().min(1).optional(),
  /** The npm registry the packages come from. */
  registry: httpUrl.default('https://registry.npmjs.org/'),
  /** Bearer token for the registry ("${VAR}"), for private packages. */
  registryToken: z.string().min(1).optional(),
  tasks: taskParams,
});

const directoryStore = z.strictObject({ kind: z.literal('directory'), path: z.string().min(1) });
const s3Store = z.strictObject({
  kind: z.literal('s3'),
  bucket: z.string().min(3),
  /** Key prefix of the dumps, e.g. "postgres/". */
  prefix: z.string().default(''),
  /** For S3-compatible servers (MinIO, Ceph...); default: AWS. */
  endpoint: httpUrl.optional(),
  region: z.string().min(1).default('us-east-1'),
  forcePathStyle: z.boolean().default(false),
  /** Default: the AWS SDK's own chain (env, profile, instance role). */
  accessKeyId: z.string().min(1).optional(),
  secretAccessKey: z.string().min(1).optional(),
});
export const backupStoreSchema = z.discriminatedUnion('kind', [directoryStore, s3Store]);

/** The placeholders a drill silence's matcher values may hold, replaced by the drill's own values. */
export const DRILL_SILENCE_PLACEHOLDERS = ['namespace', 'deployment'] as const;

/** A label name as Alertmanager accepts it. */
const labelName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a label name (letters, digits and "_", not starting with a digit)');

const matcherValue = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    for (const [, key] of value.matchAll(/\{([^}]*)\}/g)) {
      if (!(DRILL_SILENCE_PLACEHOLDERS as readonly string[]).includes(key!)) {
        ctx.addIssue({ code: 'custom', message: `unknown placeholder {${key}} (known: ${DRILL_SILENCE_PLACEHOLDERS.map((k) => `{${k}}`).join(', ')})` });
      }
    }
  });

const DRILL_SILENCE_DEFAULT = { matchers: { namespace: '{namespace}', deployment: '{deployment}' }, marginSeconds: 300 };

const drillSilence = z.strictObject({
  /** Label name → exact value; `{namespace}` and `{deployment}` become the drill's. */
  matchers: z
    .record(labelName, matcherValue)
    .refine((m) => Object.keys(m).length > 0, { error: 'needs at least one matcher (or set silence: false)' })
    .default(DRILL_SILENCE_DEFAULT.matchers),
  /** The silence lasts the recovery timeout plus this, in case caretaker dies before it can expire it. */
  marginSeconds: z.number().int().min(0).max(86_400).default(DRILL_SILENCE_DEFAULT.marginSeconds),
});

const backupsTarget = z.strictObject({
  name,
  /** The postgres target these dumps are of. */
  database: name,
  store: backupStoreSchema,
  /** Which files in the store are this target's dumps: `*` and `?` wildcards, e.g. "auditron-*.sql.gz". */
  pattern: z.string().min(1).refine((p) => !p.includes('/'), { error: 'must be a file name pattern, without "/"' }),
  /** The server restore tests create their scratch databases on (its url names a maintenance database). */
  scratch: z.strictObject({ url: postgresUrl }).optional(),
  allow: z
    .strictObject({
      /** restore-test and dr-drill create (and drop) scratch databases. */
      restore: z.boolean().default(false),
      /** The backup task writes dumps into the store and deletes old ones. */
      backup: z.boolean().default(false),
    })
    .default({ restore: false, backup: false }),
  /** dr-drill's optional pod-kill: which deployment, and the URL that says it serves again. */
  drill: z
    .strictObject({
      kubernetes: name,
      namespace: k8sName,
      deployment: k8sName,
      healthUrl: httpUrl.optional(),
      /**
       * The Alertmanager silence held while the pod is down (on every
       * alertmanager channel), so the drill's own outage pages nobody
       * through Alertmanager; `false`: none.
       */
      silence: z.union([z.literal(false), drillSilence]).default(DRILL_SILENCE_DEFAULT),
    })
    .optional(),
  tasks: taskParams,
});

/**
 * A runbook line that needs a person (update the documentation, review the
 * dashboards): the checklist task says when it is due and when it is
 * overdue, until someone marks it done. Its period runs from one fire time
 * of its cron (or of the named schedule's) to the next.
 */
export const checklistItemSchema = z.strictObject({
  id: name,
  title: z.string().min(1).max(200),
  /** 5 fields, or 6 with seconds first; or `schedule`, a schedule's id, for its cron and timezone. */
  cron: z.string().optional(),
  schedule: name.optional(),
  /** Default: the schedule's, else the config's `timezone`. */
  timezone: z.string().optional(),
  /** How long after its period starts an item not done becomes overdue. */
  graceHours: z.number().min(0).max(24 * 366).default(168),
  /** The document to update, the dashboard to review. */
  link: httpUrl.optional(),
  enabled: z.boolean().default(true),
});

export const scheduleSchema = z.strictObject({
  /** 5 fields, or 6 with seconds first. */
  cron: z.string().optional(),
  /** Checked with the cron expression in resolveSchedules, so both errors show at once. */
  timezone: z.string().optional(),
  tasks: z.array(z.string()).optional(),
  enabled: z.boolean().optional(),
  /** A missed run (no completed run for a period plus the grace) is enqueued at once. */
  catchUp: z.boolean().optional(),
  /** How late a run may be before it counts as missed; default 1 h (daily and longer), 10 % of the period below. */
  graceSeconds: z.number().int().min(0).max(30 * 86_400).optional(),
});

const emailAddress = z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address');

/**
 * Where alerts and the weekly report go. `email` and `webhook` are the
 * first two channels (named `email` and `webhook`); `channels` adds named
 * ones of any kind, and `routes` says which problems reach which (see
 * src/alerts/routing.ts for the default).
 */
const notificationsSchema = z.strictObject({
  email: z
    .strictObject({
      smtp: smtpSchema,
      from: emailAddress,
      /** The weekly report's recipients. */
      to: z.array(emailAddress).min(1),
      /** Who gets alerts (default: `to`). */
      onCall: z.array(emailAddress).optional(),
    })
    .optional(),
  /** A Slack-compatible webhook (JSON with a `text` field). */
  webhook: z.strictObject({ url: httpUrl }).optional(),
  /** Named alert channels: email, webhook, alertmanager, pagerduty. */
  channels: z.record(channelName, channelSchema).default({}),
  /** First match wins; absent: the runbook's default (critical to every channel, warning to chat and Alertmanager). */
  routes: z.array(routeSchema).optional(),
  /** A critical alert that stays open is sent again after this long. */
  repeatAlertSeconds: z.number().int().min(60).max(30 * 86_400).default(24 * 3600),
});

export const configSchema = z.strictObject({
  /** Default timezone of schedules and reports. */
  timezone: timezone.default('UTC'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  redis: z.strictObject({
    url: redisUrl.default('redis://127.0.0.1:6379'),
    /** BullMQ key prefix; tests use a random one. */
    prefix: name.default('bull'),
  }).default({ url: 'redis://127.0.0.1:6379', prefix: 'bull' }),
  state: z.strictObject({
    /** Defaults to the first postgres target's url. */
    url: postgresUrl.optional(),
    retentionDays: z.number().int().min(1).max(36_500).default(400),
    /** Each statement on the state database; the client gives up 5 s later, when the server never got it. */
    statementTimeoutSeconds: z.number().int().min(1).max(3_600).default(30),
  }).default({ retentionDays: 400, statementTimeoutSeconds: 30 }),
  web: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).default(3000),
    auth: z.strictObject({ admin: credential, viewer: credential }).default({}),
    publicUrl: httpUrl.optional(),
  }).default({ host: '127.0.0.1', port: 3000, auth: {} }),
  worker: z.strictObject({
    concurrency: z.number().int().min(1).max(64).default(2),
    /** Tries of a run that ends in `error` (1 = no retry). */
    attempts: z.number().int().min(1).max(20).default(3),
    /** First retry delay; doubles each try. */
    backoffMs: z.number().int().min(0).max(24 * 3600_000).default(30_000),
    /** How long SIGTERM waits for running tasks before handing them back. */
    shutdownGraceMs: z.number().int().min(0).max(3600_000).default(30_000),
    /** A killed worker's job is handed to another worker after this long (BullMQ's stalled check). */
    stalledIntervalMs: z.number().int().min(1_000).max(3600_000).default(30_000),
    /**
     * BullMQ's job lock, renewed every half of it while a task runs: a killed
     * worker's job can be handed on only once it lapses. Short locks hand over
     * sooner, but a worker whose event loop stalls for half of it loses its
     * job to another.
     */
    lockDurationMs: z.number().int().min(5_000).max(3600_000).default(30_000),
    /** How often results that waited for the state database (the outbox) are written once it answers again. */
    outboxFlushSeconds: z.number().int().min(1).max(3_600).default(15),
  }).default({ concurrency: 2, attempts: 3, backoffMs: 30_000, shutdownGraceMs: 30_000, stalledIntervalMs: 30_000, lockDurationMs: 30_000, outboxFlushSeconds: 15 }),
  scheduler: z.strictObject({
    /** How often each scheduler replica re-syncs the job schedulers (repairs hand edits and a Redis that lost them). */
    resyncSeconds: z.number().int().min(1).max(86_400).default(300),
  }).default({ resyncSeconds: 300 }),
  /** `/livez` of the worker and scheduler roles, which have no web server: off unless a port is set (the web role serves it beside /health). */
  liveness: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65_535).optional(),
  }).default({ host: '127.0.0.1' }),
  targets: z.strictObject({
    postgres: z.array(postgresTarget).default([]),
    redis: z.array(redisTarget).default([]),
    queues: z.array(queuesTarget).default([]),
    kubernetes: z.array(kubernetesTarget).default([]),
    http: z.array(httpTarget).default([]),
    prometheus: z.array(prometheusTarget).default([]),
    backups: z.array(backupsTarget).default([]),
    lockfiles: z.array(lockfilesTarget).default([]),
  }).default({ postgres: [], redis: [], queues: [], kubernetes: [], http: [], prometheus: [], backups: [], lockfiles: [] }),
  /** Per-task params and thresholds, checked against each task's own schema. */
  tasks: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
  schedules: z.record(name, scheduleSchema).default({}),
  notifications: notificationsSchema.default({ channels: {}, repeatAlertSeconds: 24 * 3600 }),
  /** Recurring windows during which matching problems do not alert (and, with pauseChanges, changing tasks skip). */
  maintenance: z.array(maintenanceSchema).default([]),
  /** Accepted findings: they leave alerts and the report's open list until they lapse or get worse. */
  waivers: z.array(waiverSchema).default([]),
  /** The runbook's manual lines, tracked by the checklist task until someone marks them done. */
  checklist: z.array(checklistItemSchema).default([]),
  /** The weekly report: its title (the service's name) and timezone. */
  report: z
    .strictObject({
      title: z.string().min(1).max(100).default('caretaker'),
    })
    .default({ title: 'caretaker' }),
});

export type RawConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type ScheduleOverride = z.output<typeof scheduleSchema>;

/** A checklist item with its cron and timezone resolved (from `schedule` when it names one). */
export interface ChecklistItem {
  id: string;
  title: string;
  cron: string;
  timezone: string;
  graceHours: number;
  link?: string;
  enabled: boolean;
}

export type PostgresTarget = z.output<typeof postgresTarget>;
export type RedisTarget = z.output<typeof redisTarget>;
/** A queues target with its redis target resolved at load (see validateConfig). */
export type QueuesTarget = z.output<typeof queuesTarget> & {
  /** The redis target named by `redis`. */
  redisTarget: RedisTarget;
};
export type KubernetesTarget = z.output<typeof kubernetesTarget>;
export type HttpTarget = z.output<typeof httpTarget>;
export type PrometheusTarget = z.output<typeof prometheusTarget>;
export type LockfilesTarget = z.output<typeof lockfilesTarget>;
export type BackupStoreConfig = z.output<typeof backupStoreSchema>;
/** A backups target with its references resolved at load (see validateConfig). */
export type BackupsTarget = z.output<typeof backupsTarget> & {
  /** The postgres target named by `database`. */
  source: PostgresTarget;
  /** The kubernetes target named by `drill.kubernetes`. */
  drillKubernetes?: KubernetesTarget;
  /** The URLs of the alertmanager channels, where dr-drill silences its pod kill; absent or empty: none. */
  alertmanagers?: string[];
};

/** caretaker's own state database and history: tasks like history-prune run here. */
export interface CaretakerTarget {
  name: 'caretaker';
  retentionDays: number;
  /** Every configured target, for tasks that look across them (security-audit). */
  targets: Config['targets'];
  /** For the tasks that report and alert (weekly-report). */
  notifications: Config['notifications'];
  report: Config['report'];
  timezone: string;
  publicUrl?: string;
  /** Every enabled (task, target) with its cron: what was due (the weekly report's "never ran"). */
  schedulers: { task: string; target: string; cron: string; timezone: string }[];
  /** The config's waivers and maintenance windows: the weekly report shows findings waived or silenced. */
  waivers: Config['waivers'];
  maintenance: Config['maintenance'];
  /** The manual runbook lines (the checklist task; the weekly report lists what was done and what is overdue). */
  checklist: ChecklistItem[];
  tasks: Record<string, Record<string, unknown>>;
}

export interface TargetByKind {
  postgres: PostgresTarget;
  redis: RedisTarget;
  queues: QueuesTarget;
  kubernetes: KubernetesTarget;
  http: HttpTarget;
  prometheus: PrometheusTarget;
  backups: BackupsTarget;
  lockfiles: LockfilesTarget;
  caretaker: CaretakerTarget;
}
export type TargetKind = keyof TargetByKind;
export type AnyTarget = TargetByKind[TargetKind];

/** One job scheduler: a task on a target on a schedule's cron (the loader expands them from the schedules). */
export interface SchedulerEntry {
  /** `<schedule>:<task>:<target>`, stable across restarts and replicas. */
  id: string;
  schedule: string;
  task: string;
  target: string;
  targetKind: TargetKind;
  cron: string;
  timezone: string;
  catchUp: boolean;
  graceSeconds?: number;
}

/** The validated config every module receives; nothing else reads the environment. */
export interface Config extends Omit<ParsedConfig, 'targets' | 'checklist'> {
  targets: Omit<ParsedConfig['targets'], 'backups' | 'queues'> & { backups: BackupsTarget[]; queues: QueuesTarget[] };
  state: ParsedConfig['state'] & { url: string };
  /** Where the config came from, for messages: a file path or "environment defaults". */
  source: string;
  /** Every job scheduler the config declares (enabled schedules × tasks × targets), resolved once at load. */
  schedulers: SchedulerEntry[];
  /** Alert channels by name and the routes to them, resolved once at load. */
  alerting: ResolvedAlerting;
  /** The checklist's items, each with its cron and timezone. */
  checklist: ChecklistItem[];
}
