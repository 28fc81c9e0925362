/**
 * The console's silences and waivers, behind the web role's login:
 * - `GET /silences` (`?task=&target=&code=&subject=` fill the form in, as
 *   a finding's Silence… link does); `POST /silences` (admin) adds one;
 *   `POST /silences/:id/expire` (admin) ends one now;
 * - `GET /waivers` the same way; `POST /waivers` (admin) adds one;
 *   `POST /waivers/:id/remove` (admin) removes a stored one.
 * Who is the signed-in user. They are the same stores as `caretaker
 * silence` and `caretaker waive`, checked by the same rules, so a form and
 * the command line refuse the same mistakes with the same words.
 */
import express, { Router, type Response } from 'express';
import { z } from 'zod';
import { formatIssues } from '../../config/format-issues';
import { TASKS } from '../../jobs';
import { SilenceStore } from '../../alerts/suppress/silences';
import { WaiverStore } from '../../alerts/suppress/waivers';
import { knownNames, silenceFromRequest, waiverFromRequest, type FieldName, type KnownNames } from '../../alerts/suppress/requests';
import { buildStatus, openProblems } from '../../status/status';
import { UsageError } from '../../errors';
import { roleOf, userOf } from '../auth';
import { SILENCES_PATH, WAIVERS_PATH } from '../paths';
import type { FrameContext } from './layout';
import { sendMessage, sendPage, type PageRouteDeps } from './respond';
import { renderSilencesPage, renderWaiversPage, type FormState, type NameChoices } from './suppress-pages';

/** A form names its fields in quotes where the command line says `--for`. */
const FORM_FIELD: FieldName = (f) => `"${f}"`;

const text = z.string().max(600).optional();

/** What may prefill a form, and the notices a redirect after a post carries. */
const pageQuery = z.strictObject({
  task: text,
  target: text,
  code: text,
  subject: text,
  added: z.string().max(20).optional(),
  expired: z.string().max(20).optional(),
  removed: z.string().max(20).optional(),
});

const silenceBody = z.object({ task: text, target: text, code: text, subject: text, for: text, until: text, reason: text });
const waiverBody = z.object({ task: text, target: text, code: text, subject: text, until: text, reason: text, severity: text });

const ID = /^\d{1,18}$/;

export function suppressRoutes(deps: PageRouteDeps): Router {
  const { config, state, login, frame, why } = deps;
  const silences = new SilenceStore(state);
  const waivers = new WaiverStore(state, config.waivers);
  const known: KnownNames = knownNames(config, TASKS.keys());
  const choices: NameChoices = { tasks: [...known.tasks].sort(), targets: [...known.targets].sort() };
  const form = express.urlencoded({ extended: false, limit: '8kb' });
  const router = Router();

  const unavailable = (res: Response, ctx: FrameContext, err: unknown) =>
    sendMessage(res, ctx, 503, 'History unavailable', `the state database did not answer: ${why(err)}`);

  /** The admin only; the viewer gets a 403 page saying so. */
  const adminOnly = (res: Response, ctx: FrameContext, what: string): boolean => {
    if (roleOf(res) === 'admin') return true;
    sendMessage(res, ctx, 403, 'Forbidden', `forbidden: the viewer is read-only; ${what} needs the admin login`);
    return false;
  };

  async function silencesPage(res: Response, ctx: FrameContext, formState: FormState, notice?: string, status = 200): Promise<void> {
    let list;
    try {
      list = await silences.list(ctx.now);
    } catch (err) {
      return unavailable(res, ctx, err);
    }
    sendPage(res, renderSilencesPage({ silences: list, form: formState, choices, ...(notice ? { notice } : {}) }, ctx), status);
  }

  async function waiversPage(res: Response, ctx: FrameContext, formState: FormState, notice?: string, code = 200): Promise<void> {
    let live, status;
    try {
      [live, status] = await Promise.all([waivers.live(ctx.now), buildStatus({ state, entries: config.schedulers, suppress: config, now: ctx.now })]);
    } catch (err) {
      return unavailable(res, ctx, err);
    }
    sendPage(res, renderWaiversPage({ waivers: live, waived: status.waived, form: formState, choices, ...(notice ? { notice } : {}) }, ctx), code);
  }

  router.get(SILENCES_PATH, login, async (req, res) => {
    const ctx = frame(res);
    const q = pageQuery.safeParse(req.query);
    if (!q.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(q.error).join('; '));
    const { task, target, code, subject } = q.data;
    const notice = q.data.added ? `Silence ${q.data.added} added.` : q.data.expired ? `Silence ${q.data.expired} expired: what it held alerts within 30 s if still open.` : undefined;
    await silencesPage(res, ctx, { values: { task, target, code, subject, for: '2h' } }, notice);
  });

  router.post(SILENCES_PATH, login, form, async (req, res) => {
    const ctx = frame(res);
    if (!adminOnly(res, ctx, 'adding a silence')) return;
    const body = silenceBody.safeParse(req.body ?? {});
    if (!body.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(body.error).join('; '));
    let added;
    try {
      added = await silences.add(silenceFromRequest(body.data, userOf(res) ?? 'console', known, ctx.now, FORM_FIELD));
    } catch (err) {
      if (err instanceof UsageError) return silencesPage(res, ctx, { values: body.data, error: err.message }, undefined, 400);
      return unavailable(res, ctx, err);
    }
    res.redirect(303, `${SILENCES_PATH}?added=${added.id}`);
  });

  router.post(`${SILENCES_PATH}/:id/expire`, login, form, async (req, res) => {
    const ctx = frame(res);
    if (!adminOnly(res, ctx, 'expiring a silence')) return;
    const id = String(req.params.id);
    let expired;
    try {
      expired = ID.test(id) ? await silences.expire(id, userOf(res) ?? 'console', ctx.now) : undefined;
    } catch (err) {
      return unavailable(res, ctx, err);
    }
    if (!expired) return sendMessage(res, ctx, 404, 'No such silence', `no silence ${JSON.stringify(id)} in force or to come`);
    res.redirect(303, `${SILENCES_PATH}?expired=${expired.id}`);
  });

  router.get(WAIVERS_PATH, login, async (req, res) => {
    const ctx = frame(res);
    const q = pageQuery.safeParse(req.query);
    if (!q.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(q.error).join('; '));
    const { task, target, code, subject } = q.data;
    const notice = q.data.added ? `Waiver ${q.data.added} added.` : q.data.removed ? `Waiver ${q.data.removed} removed: its findings are open again.` : undefined;
    await waiversPage(res, ctx, { values: { task, target, code, subject } }, notice);
  });

  router.post(WAIVERS_PATH, login, form, async (req, res) => {
    const ctx = frame(res);
    if (!adminOnly(res, ctx, 'adding a waiver')) return;
    const body = waiverBody.safeParse(req.body ?? {});
    if (!body.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(body.error).join('; '));
    const values = body.data;
    let added;
    try {
      const open = values.task?.trim() && values.target?.trim() ? await openProblems({ state, entries: config.schedulers, suppress: config, now: ctx.now }, values.task.trim(), values.target.trim()) : [];
      added = await waivers.add(waiverFromRequest(values, userOf(res) ?? 'console', known, open, ctx.now, FORM_FIELD));
    } catch (err) {
      if (err instanceof UsageError) return waiversPage(res, ctx, { values, error: err.message }, undefined, 400);
      return unavailable(res, ctx, err);
    }
    res.redirect(303, `${WAIVERS_PATH}?added=${added.id}`);
  });

  router.post(`${WAIVERS_PATH}/:id/remove`, login, form, async (req, res) => {
    const ctx = frame(res);
    if (!adminOnly(res, ctx, 'removing a waiver')) return;
    const id = String(req.params.id);
    if (/^config-\d+$/.test(id)) return sendMessage(res, ctx, 400, 'From the config', `waiver ${id} comes from the config's waivers: remove it there`);
    let removed;
    try {
      removed = ID.test(id) ? await waivers.remove(id, userOf(res) ?? 'console', ctx.now) : undefined;
    } catch (err) {
      return unavailable(res, ctx, err);
    }
    if (!removed) return sendMessage(res, ctx, 404, 'No such waiver', `no waiver ${JSON.stringify(id)} in force`);
    res.redirect(303, `${WAIVERS_PATH}?removed=${removed.id}`);
  });

  return router;
}
