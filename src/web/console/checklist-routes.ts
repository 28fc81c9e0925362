/**
 * The console's checklist, behind the web role's login:
 * - `GET /checklist`: every item's state (`?done=ITEM` after a post says so);
 * - `POST /checklist/:item/done` (admin): marks it done, as `caretaker done`
 *   does, with the signed-in user as who and the form's note.
 */
import express, { Router, type Response } from 'express';
import { z } from 'zod';
import { formatIssues } from '../../config/format-issues';
import { ChecklistStore } from '../../checklist/store';
import { checklistStandings } from '../../checklist/standings';
import { checkedNote, checklistItem } from '../../checklist/requests';
import { UsageError } from '../../errors';
import { roleOf, userOf } from '../auth';
import { CHECKLIST_PATH } from '../paths';
import type { FrameContext } from './layout';
import { sendMessage, sendPage, type PageRouteDeps } from './respond';
import { renderChecklistPage, type ChecklistPage } from './checklist-page';

const pageQuery = z.strictObject({ done: z.string().max(100).optional() });
const doneBody = z.object({ note: z.string().max(2_000).optional() });

export function checklistRoutes(deps: PageRouteDeps): Router {
  const { config, state, login, frame, why } = deps;
  const form = express.urlencoded({ extended: false, limit: '8kb' });
  const router = Router();

  async function page(res: Response, ctx: FrameContext, extra: Pick<ChecklistPage, 'notice' | 'refused'>, status = 200): Promise<void> {
    let items;
    try {
      items = await checklistStandings(state, config.checklist, ctx.now, { record: false });
    } catch (err) {
      return sendMessage(res, ctx, 503, 'History unavailable', `the state database did not answer: ${why(err)}`);
    }
    sendPage(res, renderChecklistPage({ items, configured: config.checklist.length, ...extra }, ctx), status);
  }

  router.get(CHECKLIST_PATH, login, async (req, res) => {
    const ctx = frame(res);
    const q = pageQuery.safeParse(req.query);
    if (!q.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(q.error).join('; '));
    await page(res, ctx, q.data.done ? { notice: `${q.data.done} marked done.` } : {});
  });

  router.post(`${CHECKLIST_PATH}/:item/done`, login, form, async (req, res) => {
    const ctx = frame(res);
    if (roleOf(res) !== 'admin') return sendMessage(res, ctx, 403, 'Forbidden', 'forbidden: the viewer is read-only; marking an item done needs the admin login');
    const body = doneBody.safeParse(req.body ?? {});
    if (!body.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(body.error).join('; '));
    const id = String(req.params.item);
    let item;
    try {
      item = checklistItem(config, id);
    } catch (err) {
      if (err instanceof UsageError) return sendMessage(res, ctx, 404, 'No such item', err.message);
      throw err;
    }
    const typed = body.data.note ?? '';
    let note;
    try {
      // The same rule as the command line's, in the form's words.
      note = checkedNote(typed, 'the note');
    } catch (err) {
      const error = err instanceof UsageError ? err.message : why(err);
      return page(res, ctx, { refused: { item: item.id, error, note: typed } }, 400);
    }
    try {
      await new ChecklistStore(state).markDone(item.id, userOf(res) ?? 'console', note, ctx.now);
    } catch (err) {
      return sendMessage(res, ctx, 503, 'Not recorded', `the state database did not answer: ${why(err)}`);
    }
    res.redirect(303, `${CHECKLIST_PATH}?done=${encodeURIComponent(item.id)}`);
  });

  return router;
}
