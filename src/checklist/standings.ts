/**
 * Every enabled checklist item's standing at an instant, from the state
 * database: what the task raises findings from, and what the console, the
 * CLI and the weekly report show, so they never disagree.
 */
import type { Pool } from 'pg';
import type { ChecklistItem } from '../config/schema';
import { ChecklistStore, type DoneRecord } from './store';
import { itemStanding, type ItemStanding } from './periods';

export interface ItemReport {
  item: ChecklistItem;
  standing: ItemStanding;
  lastDone?: DoneRecord;
}

/** `record`: note items never seen before as first seen now (the task does; readers only look). */
export async function checklistStandings(state: Pool, items: readonly ChecklistItem[], at: Date, opts: { record: boolean }): Promise<ItemReport[]> {
  const enabled = items.filter((i) => i.enabled);
  const ids = enabled.map((i) => i.id);
  const store = new ChecklistStore(state);
  const [lastDone, firstSeen] = await Promise.all([store.lastDone(ids, at), store.firstSeen(ids, at, opts)]);
  return enabled.map((item) => {
    const done = lastDone.get(item.id);
    const standing = itemStanding(item, { firstSeen: firstSeen.get(item.id)!, ...(done ? { lastDone: done.at } : {}) }, at);
    return { item, standing, ...(done ? { lastDone: done } : {}) };
  });
}
