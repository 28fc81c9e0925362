/**
 * The checklist's records in the state database: who marked which item done
 * when (with a note), and when caretaker first saw each item (a new item is
 * due from the period it appeared in, not from the cron's first fire ever).
 */
import type { Pool } from 'pg';

export const CHECKLIST_SQL = {
  /** Records one "done". */
  markDone: `
    INSERT INTO caretaker.checklist_done (item, done_at, done_by, note)
    VALUES ($1, $2, $3, $4)
    RETURNING id, item, done_at, done_by, note`,
  /** The latest "done" of each listed item at or before $2 (checklist_done_item_idx). */
  lastDone: `
    SELECT DISTINCT ON (item) item, done_at, done_by, note
    FROM caretaker.checklist_done
    WHERE item = ANY($1::text[]) AND done_at <= $2
    ORDER BY item, done_at DESC, id DESC`,
  /** Records the items not seen before (at $2), then reads when each was first seen. */
  firstSeen: `
    WITH added AS (
      INSERT INTO caretaker.checklist_items (item, first_seen_at)
      SELECT unnest($1::text[]), $2
      ON CONFLICT (item) DO NOTHING
      RETURNING item, first_seen_at
    )
    SELECT item, first_seen_at FROM added
    UNION ALL
    SELECT item, first_seen_at FROM caretaker.checklist_items WHERE item = ANY($1::text[])`,
  /** Reads when each item was first seen, recording nothing (the console and the report only look). */
  firstSeenReadOnly: `SELECT item, first_seen_at FROM caretaker.checklist_items WHERE item = ANY($1::text[])`,
  /** Every "done" in [$1, $2), oldest first: the weekly report's list. */
  doneBetween: `
    SELECT item, done_at, done_by, note
    FROM caretaker.checklist_done
    WHERE done_at >= $1 AND done_at < $2
    ORDER BY done_at, id`,
} as const;

export interface DoneRecord {
  item: string;
  at: Date;
  by: string;
  note?: string;
}

interface DoneRow {
  item: string;
  done_at: Date;
  done_by: string;
  note: string | null;
}

const doneRecord = (r: DoneRow): DoneRecord => ({ item: r.item, at: r.done_at, by: r.done_by, ...(r.note ? { note: r.note } : {}) });

export class ChecklistStore {
  constructor(private readonly pool: Pool) {}

  async markDone(item: string, by: string, note: string | undefined, at: Date = new Date()): Promise<DoneRecord> {
    const { rows } = await this.pool.query<DoneRow>(CHECKLIST_SQL.markDone, [item, at, by, note ?? null]);
    return doneRecord(rows[0]!);
  }

  /** The latest "done" of each item at or before `at`, by item. */
  async lastDone(items: readonly string[], at: Date = new Date()): Promise<Map<string, DoneRecord>> {
    if (items.length === 0) return new Map();
    const { rows } = await this.pool.query<DoneRow>(CHECKLIST_SQL.lastDone, [items, at]);
    return new Map(rows.map((r) => [r.item, doneRecord(r)]));
  }

  /**
   * When each item was first seen. With `record`, items never seen are
   * recorded as seen at `at` (the checklist task does); without it they are
   * taken as first seen at `at` and nothing is written.
   */
  async firstSeen(items: readonly string[], at: Date, opts: { record: boolean }): Promise<Map<string, Date>> {
    const seen = new Map<string, Date>();
    if (items.length === 0) return seen;
    const sql = opts.record ? CHECKLIST_SQL.firstSeen : CHECKLIST_SQL.firstSeenReadOnly;
    const { rows } = await this.pool.query<{ item: string; first_seen_at: Date }>(sql, opts.record ? [items, at] : [items]);
    for (const r of rows) seen.set(r.item, r.first_seen_at);
    for (const item of items) if (!seen.has(item)) seen.set(item, at);
    return seen;
  }

  /** Every "done" in [start, end), oldest first. */
  async doneBetween(start: Date, end: Date): Promise<DoneRecord[]> {
    const { rows } = await this.pool.query<DoneRow>(CHECKLIST_SQL.doneBetween, [start, end]);
    return rows.map(doneRecord);
  }
}
