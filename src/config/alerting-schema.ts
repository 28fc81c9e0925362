/**
 * The config's alerting keys: named channels, routes by severity, task,
 * target and code, maintenance windows and waivers. Kept apart from
 * schema.ts so the rules of who hears what read in one place.
 */
import { z } from 'zod';
import { cronProblem, isValidTimezone } from './cron-syntax';
import { parseDurationSeconds } from '../util/duration';

const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const channelName = z.string().regex(CHANNEL_NAME, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');

const httpUrl = z.string().refine(
  (s) => {
    try {
      return ['http:', 'https:'].includes(new URL(s).protocol);
    } catch {
      return false;
    }
  },
  { error: 'must be a URL starting with http:// or https://' },
);

const emailAddress = z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address');

export const smtpSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65_535).default(587),
  /** true for port 465 (implicit TLS); otherwise STARTTLS when the server offers it. */
  secure: z.boolean().default(false),
  user: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
});

export const severitySchema = z.enum(['info', 'warning', 'critical']);

/** `2h`, `90m`, `1d`, or seconds. */
export const durationSchema = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const seconds = parseDurationSeconds(v);
  if (seconds === undefined) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration (e.g. "90m", "2h", "1d", or seconds)` });
    return z.NEVER;
  }
  return seconds;
});

/** A matcher value: exact, or a glob where `*` is any run of characters and `?` one. */
const pattern = z.string().min(1).max(500);

/** Which problems a route, silence or window covers: every field given must match. */
export const problemMatchSchema = z.strictObject({
  severity: z.union([severitySchema, z.array(severitySchema).min(1)]).optional(),
  task: pattern.optional(),
  target: pattern.optional(),
  code: pattern.optional(),
  subject: pattern.optional(),
});

const emailChannel = z.strictObject({
  kind: z.literal('email'),
  smtp: smtpSchema,
  from: emailAddress,
  to: z.array(emailAddress).min(1),
});
const webhookChannel = z.strictObject({ kind: z.literal('webhook'), url: httpUrl });
const alertmanagerChannel = z.strictObject({
  kind: z.literal('alertmanager'),
  url: httpUrl,
  /**
   * Alertmanager expires an alert it has not heard about for its
   * `resolve_timeout` (5 min by default): caretaker re-posts open alerts
   * every third of it.
   */
  resolveTimeoutSeconds: z.number().int().min(30).max(86_400).default(300),
});
const pagerdutyChannel = z.strictObject({
  kind: z.literal('pagerduty'),
  /** The integration's routing key (Events API v2): put it in an environment variable. */
  routingKey: z.string().min(1),
  url: httpUrl.default('https://events.pagerduty.com/v2/enqueue'),
});

export const channelSchema = z.discriminatedUnion('kind', [emailChannel, webhookChannel, alertmanagerChannel, pagerdutyChannel]);

export const routeSchema = z.strictObject({
  match: problemMatchSchema.default({}),
  /** Channel names; empty: matching problems alert nobody (the report still shows them). */
  channels: z.array(channelName),
  /** An open problem is re-sent after this long (default: a day for warnings, `repeatAlertSeconds` otherwise). */
  repeatSeconds: z.number().int().min(60).max(30 * 86_400).optional(),
});

const timezone = z.string().refine(isValidTimezone, { error: (i) => `${JSON.stringify(i.input)} is not a known IANA timezone` });
const cron = z.string().superRefine((expr, ctx) => {
  const problem = cronProblem(expr);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const maintenanceSchema = z.strictObject({
  /** How the window is shown (default: its cron and duration). */
  name: z.string().min(1).max(100).optional(),
  cron,
  duration: durationSchema,
  /** Default: the config's timezone. */
  timezone: timezone.optional(),
  task: pattern.optional(),
  target: pattern.optional(),
  code: pattern.optional(),
  subject: pattern.optional(),
  /** Tasks that change a target skip it during the window. */
  pauseChanges: z.boolean().default(false),
  reason: z.string().min(1).max(500).optional(),
});

export const waiverSchema = z.strictObject({
  task: pattern,
  target: pattern,
  code: pattern,
  subject: pattern,
  reason: z.string().min(1).max(500),
  /** The waiver lapses at this date or time (ISO 8601); none: until removed from the config. */
  until: z.iso.date().or(z.iso.datetime({ offset: true })).optional(),
  /** The worst severity accepted: a finding that rises above it alerts again. */
  severity: severitySchema.default('warning'),
});

export type ChannelConfig = z.output<typeof channelSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type ProblemMatch = z.output<typeof problemMatchSchema>;
export type MaintenanceWindowConfig = z.output<typeof maintenanceSchema>;
export type WaiverConfig = z.output<typeof waiverSchema>;
