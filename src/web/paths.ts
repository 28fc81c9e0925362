/**
 * Where the web role serves the board and the reports, and the public
 * links to them. Free of express and Bull Board, so a worker that links an
 * alert to its job or the weekly email to its page does not load either.
 */
import { QUEUE_NAME } from '../queue/queue';

/** Bull Board. */
export const BOARD_PATH = '/admin/queues';

/** One job's page in Bull Board: where the console and the alerts link a run's job. */
export function boardJobPath(jobId: string): string {
  return `${BOARD_PATH}/queue/${encodeURIComponent(QUEUE_NAME)}/${encodeURIComponent(jobId)}`;
}

/** The weekly report's pages: `/reports` (the last complete week) and `/reports/2026-W48`. */
export const REPORTS_PATH = '/reports';

/** `path` under the web role's public URL (`web.publicUrl`), or undefined when none is configured. */
export function publicLink(publicUrl: string | undefined, path: string): string | undefined {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}${path}` : undefined;
}

/** The console: the status grid and the open findings; the web role's front door. */
export const CONSOLE_PATH = '/';

/** The console's stylesheet and script, served by the web role itself (the pages load nothing from elsewhere). */
export const ASSETS_PATH = '/assets';

/** Where the console's "run now" form posts (admin only). */
export const RUN_NOW_PATH = '/run-now';

/** The run history of one scheduled (task, target). */
export function checkPath(task: string, target: string): string {
  return `/checks/${encodeURIComponent(task)}/${encodeURIComponent(target)}`;
}

/** One stored run, rendered. */
export function runPath(id: number): string {
  return `/runs/${id}`;
}

/** The stored run of a BullMQ job (the board links each job here); redirects to `runPath`. */
export function runOfJobPath(jobId: string): string {
  return `/runs/job/${encodeURIComponent(jobId)}`;
}

/** The console's checklist: each manual runbook line's state, and where "Mark done" posts (admin). */
export const CHECKLIST_PATH = '/checklist';

/** The console's silences: the list, the form, and where it posts (admin). */
export const SILENCES_PATH = '/silences';

/** The console's waivers: the list, the form, and where it posts (admin). */
export const WAIVERS_PATH = '/waivers';

/** A finding's identity, as the Silence… and Waive… links prefill the forms with it. */
export interface FindingRef {
  task: string;
  target: string;
  code: string;
  subject: string;
}

/** The silences page with its form filled in for one finding. */
export function silenceFormPath(f: FindingRef): string {
  return `${SILENCES_PATH}?${new URLSearchParams({ task: f.task, target: f.target, code: f.code, subject: f.subject }).toString()}#new`;
}

/** The waivers page with its form filled in for one finding. */
export function waiverFormPath(f: FindingRef): string {
  return `${WAIVERS_PATH}?${new URLSearchParams({ task: f.task, target: f.target, code: f.code, subject: f.subject }).toString()}#new`;
}
