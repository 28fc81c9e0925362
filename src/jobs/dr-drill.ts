/**
 * dr-drill (monthly): the runbook's "DR drill". The restore test, timed end
 * to end as the RTO (create + dump fetch and restore + verification), and
 * the newest backup's age as the RPO (manifest finishedAt, else the file's
 * time), each against its objective. Optionally (`drill:` on the backups
 * target) it deletes one pod of a deployment in a namespace the kubernetes
 * target explicitly allows and measures how long the service takes to be
 * whole again; while the pod is down, a silence on every alertmanager
 * channel (`drill.silence`) keeps the drill from paging anyone. It ends
 * with `dr_drill_record`, the record of what it did and measured, which
 * the weekly report shows.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes, type TaskContext } from '../contract/task';
import type { Action, Finding } from '../contract/result';
import { RESTORE_CODES, RESTORE_TASK_TIMEOUT_MS, restoreParamFields, runRestore, type RestoreRun, type RestoreStep } from '../backups/restore';
import { listDumps, type StoredObject } from '../backups/store';
import { backupTime, readManifest, type BackupManifest } from '../backups/manifest';
import { measurePodRecovery, type PodRecoveryResult } from '../kubernetes/pod-recovery';
import { createAlertmanagerClient, type AlertmanagerClient, type SilenceMatcher } from '../clients/alertmanager';
import type { BackupsTarget } from '../config/schema';
import { formatDuration } from '../util/format';
import { urlOrigin } from '../util/fetch-errors';

/** The longest the pod-kill part may wait for the deployment and health URL. */
const RECOVERY_TIMEOUT_MAX_MS = 3600_000;

const codes = {
  rto_exceeded: 'creating, restoring and verifying the newest dump took longer than `rtoSeconds`',
  rpo_exceeded: 'the newest backup is older than `rpoSeconds`: a disaster now would lose more than the objective',
  recovery_slow: 'the deployment took longer than `recoveryObjectiveSeconds` to be available and healthy after the pod kill',
  recovery_failed: 'the deployment did not recover after the pod kill (critical), or the pod-kill drill could not run',
  pod_kill_not_allowed: "the drill's namespace is not in the kubernetes target's allow.podKillNamespaces: no pod deleted",
  drill_silence_failed: "an Alertmanager silence for the pod kill could not be created or expired; the drill ran anyway",
  dr_drill_record: "the drill's record: what it restored, each step's time, RTO, RPO and the pod recovery, for the report",
  ...RESTORE_CODES,
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z.strictObject({
  ...restoreParamFields,
  /** Recovery time objective: create + fetch and restore + verify must fit (default 4 h). */
  rtoSeconds: z.number().positive().default(4 * 3600),
  /** Recovery point objective: the newest backup may be this old (default 26 h, a daily backup and slack). */
  rpoSeconds: z.number().positive().default(26 * 3600),
  /** The deployment must be fully available and healthy again this soon after its pod is deleted. */
  recoveryObjectiveSeconds: z.number().positive().default(300),
  /** The pod-kill part gives up (recovery_failed) past this. */
  recoveryTimeoutMs: z.number().int().min(1_000).max(RECOVERY_TIMEOUT_MAX_MS).default(10 * 60_000),
});
type DrillParams = z.infer<typeof params>;

export const drDrill = defineTask({
  name: 'dr-drill',
  description: 'The restore test timed as RTO, the backup age as RPO, against objectives; optionally a pod kill in an allowed namespace timed until recovery',
  target: 'backups',
  defaultSchedule: 'monthly',
  timeoutMs: RESTORE_TASK_TIMEOUT_MS + RECOVERY_TIMEOUT_MAX_MS,
  changesTarget: true,
  params,
  codes,
  async run(ctx, p) {
    const drillAt = new Date();
    const restore = await runRestore(ctx, p, 'dr-drill');
    const findings: Finding<Code>[] = [...restore.findings];
    const actions: Action[] = [...restore.actions];
    const metrics: Record<string, number> = { ...restore.metrics };
    const steps: RestoreStep[] = [...restore.steps];
    const parts: string[] = [];

    const newest = restore.dump ? { dump: restore.dump, manifest: restore.manifest } : restore.status === 'not_allowed' ? await newestDump(ctx) : undefined;
    let rpoSeconds: number | undefined;
    if (newest) {
      const backupAt = backupTime(newest.dump, newest.manifest).at;
      rpoSeconds = Math.max(0, (drillAt.getTime() - backupAt.getTime()) / 1000);
      metrics.rpo_seconds = rpoSeconds;
      parts.push(`RPO ${formatDuration(rpoSeconds * 1000)} (objective ${formatDuration(p.rpoSeconds * 1000)})`);
      if (rpoSeconds > p.rpoSeconds) {
        findings.push({
          severity: 'warning',
          code: 'rpo_exceeded',
          subject: newest.dump.name,
          message: `the newest backup is ${formatDuration(rpoSeconds * 1000)} old: a disaster now would lose more than the ${formatDuration(p.rpoSeconds * 1000)} objective`,
          suggestion: 'Back up more often (or find why the last backups did not run), or agree on a longer RPO (rpoSeconds)',
          details: { dump: newest.dump.name, backupAt: backupAt.toISOString(), rpoSeconds, objectiveSeconds: p.rpoSeconds },
        });
      }
    }

    const rtoSeconds = restore.status === 'restored' ? restore.rtoSeconds : undefined;
    if (rtoSeconds !== undefined) {
      metrics.rto_seconds = rtoSeconds;
      parts.unshift(`RTO ${formatDuration(rtoSeconds * 1000)} (objective ${formatDuration(p.rtoSeconds * 1000)})`);
      if (rtoSeconds > p.rtoSeconds) {
        findings.push({
          severity: 'warning',
          code: 'rto_exceeded',
          subject: restore.dump!.name,
          message: `restoring and verifying the newest backup took ${formatDuration(rtoSeconds * 1000)}, past the ${formatDuration(p.rtoSeconds * 1000)} objective`,
          suggestion: 'Look at the slowest step in dr_drill_record: a faster scratch server, custom-format dumps with parallel restore, or a longer RTO (rtoSeconds)',
          details: { rtoSeconds, objectiveSeconds: p.rtoSeconds, steps: restore.steps },
        });
      }
    }

    let podRecovery: PodRecoveryResult | undefined;
    const drill = ctx.target.drill;
    if (drill) {
      const subject = `${drill.namespace}/${drill.deployment}`;
      const matchers = silenceMatchers(ctx.target);
      if (ctx.dryRun) {
        actions.push({ kind: 'delete_pod', subject, applied: false, details: { kubernetes: drill.kubernetes } });
        if (matchers) actions.push({ kind: 'silence_created', subject, applied: false, details: { alertmanagers: (ctx.target.alertmanagers ?? []).map(urlOrigin), matchers } });
        parts.push(`would delete one pod of ${subject}`);
      } else {
        const started = Date.now();
        const silences = matchers ? new DrillSilences(ctx, matchers, p.recoveryTimeoutMs) : undefined;
        try {
          podRecovery = await runPodRecovery(ctx, p, silences && ((pod) => silences.create(pod)));
        } finally {
          // Whatever became of the drill, the deployment's alerts must be heard again.
          await silences?.expire();
        }
        steps.push({ step: 'pod_recovery', seconds: (Date.now() - started) / 1000 });
        actions.push(...(silences?.created ?? []));
        actions.push({ kind: 'delete_pod', subject: podRecovery.podDeleted ?? subject, applied: podRecovery.podDeleted !== undefined, durationMs: Date.now() - started });
        actions.push(...(silences?.expired ?? []));
        findings.push(...(silences?.findings ?? []));
        findings.push(
          ...recoveryFindings({ subject, result: podRecovery, objectiveSeconds: p.recoveryObjectiveSeconds }),
        );
        if (podRecovery.recoverySeconds !== undefined) {
          metrics.recovery_seconds = podRecovery.recoverySeconds;
          parts.push(`pod recovery ${formatDuration(podRecovery.recoverySeconds * 1000)}`);
        }
      }
    }

    findings.push(record(ctx.target.name, restore, { rtoSeconds, rpoSeconds, steps, podRecovery, p }));
    return { summary: `DR drill: ${[...parts, restore.summary].join('; ')}`, findings, actions, metrics };
  },
});

/** The newest dump and its manifest, for the RPO when no restore ran. */
async function newestDump(ctx: TaskContext<'backups'>): Promise<{ dump: StoredObject; manifest?: BackupManifest } | undefined> {
  const store = ctx.clients.backupStore();
  const dump = (await listDumps(store, ctx.target.pattern))[0];
  if (!dump) return undefined;
  return { dump, manifest: await readManifest(store, dump.name).catch(() => undefined) };
}

function record(
  target: string,
  restore: RestoreRun,
  m: { rtoSeconds?: number; rpoSeconds?: number; steps: RestoreStep[]; podRecovery?: PodRecoveryResult; p: DrillParams },
): Finding<Code> {
  const what = restore.status === 'restored' ? `restored ${restore.dump!.name} into ${restore.scratchDatabase}` : `restore ${restore.status.replace('_', ' ')}`;
  return {
    severity: 'info',
    code: 'dr_drill_record',
    subject: target,
    message: `DR drill on ${target}: ${what}; RTO ${m.rtoSeconds === undefined ? 'not measured' : formatDuration(m.rtoSeconds * 1000)}, RPO ${m.rpoSeconds === undefined ? 'not measured' : formatDuration(m.rpoSeconds * 1000)}`,
    details: {
      dump: restore.dump?.name ?? null,
      restoredInto: restore.status === 'restored' || restore.status === 'failed' ? (restore.scratchDatabase ?? null) : null,
      outcome: restore.status,
      rtoSeconds: m.rtoSeconds ?? null,
      rpoSeconds: m.rpoSeconds ?? null,
      objectives: { rtoSeconds: m.p.rtoSeconds, rpoSeconds: m.p.rpoSeconds, recoveryObjectiveSeconds: m.p.recoveryObjectiveSeconds },
      steps: m.steps,
      ...(m.podRecovery ? { podRecovery: m.podRecovery } : {}),
    },
  };
}

/**
 * How the pod-kill part's result reads:
 * - refused because the namespace is not in the kubernetes target's
 *   allow.podKillNamespaces: `pod_kill_not_allowed` (info) — the safe
 *   default working, nothing was touched;
 * - a pod was deleted and the deployment or its health URL did not come
 *   back: `recovery_failed` (critical) — the service is down now;
 * - the drill could not run at all (deployment already degraded, no pod,
 *   API error), nothing deleted: `recovery_failed` (warning);
 * - it came back, past `recoveryObjectiveSeconds`: `recovery_slow` (warning).
 */
export function recoveryFindings(req: {
  /** `namespace/deployment`. */
  subject: string;
  result: PodRecoveryResult;
  objectiveSeconds: number;
}): Finding<Code>[] {
  const { subject, result: r, objectiveSeconds } = req;
  const details = { ...r, objectiveSeconds };
  if (r.notAllowed) {
    return [
      {
        severity: 'info',
        code: 'pod_kill_not_allowed',
        subject,
        message: `no pod deleted: ${r.refused}`,
        suggestion: 'Add the namespace to allow.podKillNamespaces of the kubernetes target named in drill.kubernetes if the drill may delete a pod there',
        details,
      },
    ];
  }
  if (r.refused || r.error || !r.healthy) {
    const deleted = r.podDeleted !== undefined;
    return [
      {
        severity: deleted ? 'critical' : 'warning',
        code: 'recovery_failed',
        subject,
        message: deleted
          ? `${subject} did not recover after pod ${r.podDeleted} was deleted: ${r.error ?? r.refused ?? 'not fully available and healthy in time'}`
          : `pod-kill drill did not run, no pod deleted: ${r.refused ?? r.error ?? 'unknown reason'}`,
        suggestion: deleted ? 'Check the deployment now (replicas, readiness, events): losing one pod takes this service down' : 'Fix what stopped the drill (see the message) and run dr-drill again',
        details,
      },
    ];
  }
  if (r.recoverySeconds !== undefined && r.recoverySeconds > objectiveSeconds) {
    return [
      {
        severity: 'warning',
        code: 'recovery_slow',
        subject,
        message: `${subject} took ${formatDuration(r.recoverySeconds * 1000)} to recover after pod ${r.podDeleted ?? '?'} was deleted, past the ${formatDuration(objectiveSeconds * 1000)} objective`,
        suggestion: 'Run more replicas, shorten readiness delays and image pulls, or raise recoveryObjectiveSeconds',
        details,
      },
    ];
  }
  return [];
}

async function runPodRecovery(ctx: TaskContext<'backups'>, p: DrillParams, beforeDelete?: (pod: string) => Promise<void>): Promise<PodRecoveryResult> {
  const drill = ctx.target.drill!;
  const kubernetes = ctx.target.drillKubernetes;
  if (!kubernetes) return { healthy: false, steps: [], error: `no kubernetes target named ${drill.kubernetes}` };
  try {
    return await measurePodRecovery({
      kubernetes,
      open: ctx.clients.kubernetes,
      namespace: drill.namespace,
      deployment: drill.deployment,
      healthUrl: drill.healthUrl,
      timeoutMs: p.recoveryTimeoutMs,
      signal: ctx.signal,
      log: ctx.log,
      beforeDelete,
    });
  } catch (err) {
    return { healthy: false, steps: [], error: err instanceof Error ? err.message : String(err) };
  }
}

/** A bound on each silence request: the pod waits for every Alertmanager's answer, or this. */
const SILENCE_REQUEST_TIMEOUT_MS = 5_000;

/** The drill's silence matchers (`drill.silence`, placeholders filled), or undefined when it silences nothing. */
function silenceMatchers(target: BackupsTarget): SilenceMatcher[] | undefined {
  const drill = target.drill;
  if (!drill || drill.silence === false || !target.alertmanagers?.length) return undefined;
  const fill = (value: string) => value.replaceAll('{namespace}', drill.namespace).replaceAll('{deployment}', drill.deployment);
  return Object.entries(drill.silence.matchers).map(([name, value]) => ({ name, value: fill(value), isRegex: false, isEqual: true }));
}

/**
 * The Alertmanager silences a pod kill holds, one per alertmanager channel:
 * created just before the delete, for the recovery timeout plus
 * `drill.silence.marginSeconds` (so they lapse by themselves should
 * caretaker die mid-drill), expired when the drill ends. An Alertmanager
 * that refuses or cannot be reached costs the drill nothing but an info
 * finding: the drill still runs, unsilenced there.
 */
class DrillSilences {
  /** The `silence_created` actions (before the result's delete_pod) and the `silence_expired` ones (after it). */
  readonly created: Action[] = [];
  readonly expired: Action[] = [];
  readonly findings: Finding<Code>[] = [];
  private readonly held: { client: AlertmanagerClient; id: string; endsAt: Date }[] = [];

  constructor(
    private readonly ctx: TaskContext<'backups'>,
    private readonly matchers: SilenceMatcher[],
    private readonly recoveryTimeoutMs: number,
  ) {}

  private get subject(): string {
    return `${this.ctx.target.drill!.namespace}/${this.ctx.target.drill!.deployment}`;
  }

  /** Never throws: a failure is a finding. */
  async create(pod: string): Promise<void> {
    const { ctx } = this;
    const drill = ctx.target.drill!;
    const margin = drill.silence === false ? 0 : drill.silence.marginSeconds;
    const startsAt = new Date();
    const endsAt = new Date(startsAt.getTime() + this.recoveryTimeoutMs + margin * 1000);
    const comment = `caretaker dr-drill on ${ctx.target.name}: pod ${pod} of ${this.subject} is deleted on purpose; caretaker expires this silence when the drill ends`;
    await Promise.all(
      (ctx.target.alertmanagers ?? []).map(async (url) => {
        const client = createAlertmanagerClient({ url, timeoutMs: SILENCE_REQUEST_TIMEOUT_MS, signal: ctx.signal });
        const started = Date.now();
        try {
          const id = await client.createSilence({ matchers: this.matchers, startsAt, endsAt, createdBy: 'caretaker dr-drill', comment });
          // Held by a client without the run's signal: an aborted run must still expire it.
          this.held.push({ client: createAlertmanagerClient({ url, timeoutMs: SILENCE_REQUEST_TIMEOUT_MS }), id, endsAt });
          const action: Action = {
            kind: 'silence_created',
            subject: id,
            applied: true,
            durationMs: Date.now() - started,
            details: { alertmanager: client.endpoint, matchers: this.matchers, startsAt: startsAt.toISOString(), endsAt: endsAt.toISOString() },
          };
          ctx.applied(action);
          this.created.push(action);
          ctx.log.info({ alertmanager: client.endpoint, silence: id, endsAt: endsAt.toISOString() }, 'dr-drill: silenced the deployment\'s alerts');
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          ctx.log.warn({ alertmanager: client.endpoint, error: reason }, 'dr-drill: could not create the silence; the drill runs anyway');
          this.findings.push({
            severity: 'info',
            code: 'drill_silence_failed',
            subject: client.endpoint,
            message: `could not silence the alerts of ${this.subject} (${reason}): the drill ran anyway, unsilenced on this Alertmanager`,
            suggestion: 'Check that this Alertmanager is up and that caretaker may create silences there (its URL in the alertmanager channel), or set drill.silence: false',
            details: { alertmanager: client.endpoint, matchers: this.matchers },
          });
        }
      }),
    );
  }

  /** Never throws: a silence that cannot be expired lapses at its end, and says so. */
  async expire(): Promise<void> {
    await Promise.all(
      this.held.map(async ({ client, id, endsAt }) => {
        const started = Date.now();
        try {
          await client.expireSilence(id);
          this.expired.push({ kind: 'silence_expired', subject: id, applied: true, durationMs: Date.now() - started, details: { alertmanager: client.endpoint } });
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          this.ctx.log.warn({ alertmanager: client.endpoint, silence: id, error: reason }, 'dr-drill: could not expire the silence');
          this.findings.push({
            severity: 'info',
            code: 'drill_silence_failed',
            subject: client.endpoint,
            message: `silence ${id} for ${this.subject} could not be expired (${reason}): it lapses by itself at ${endsAt.toISOString()}`,
            suggestion: 'Expire it by hand in the Alertmanager (amtool silence expire) if the deployment\'s alerts must be heard before then',
            details: { alertmanager: client.endpoint, silence: id, endsAt: endsAt.toISOString() },
          });
        }
      }),
    );
  }
}

