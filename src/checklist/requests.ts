/**
 * What `caretaker done` and the console's "Mark done" accept, by the same
 * rules and words: an item the config has, and a short note.
 */
import type { ChecklistItem, Config } from '../config/schema';
import { UsageError } from '../errors';

/** A note is a line or two for the report, not a document. */
export const MAX_NOTE_CHARS = 500;

/** The item `id` of the config, enabled or not; a usage error listing the known ones. */
export function checklistItem(config: Pick<Config, 'checklist'>, id: string): ChecklistItem {
  const item = config.checklist.find((i) => i.id === id);
  if (!item) {
    const known = config.checklist.map((i) => i.id).join(', ') || 'none: add items under checklist: in the config';
    throw new UsageError(`unknown checklist item ${JSON.stringify(id)} (known: ${known})`);
  }
  return item;
}

/**
 * The note as stored: trimmed, at most MAX_NOTE_CHARS, no control characters
 * but line breaks; empty is none. `field` names it in the message (`--note`
 * on the command line, `the note` in a form).
 */
export function checkedNote(note: string | undefined, field = '--note'): string | undefined {
  const trimmed = note?.trim();
  if (!trimmed) return undefined;
  if (trimmed.length > MAX_NOTE_CHARS) throw new UsageError(`${field} must be at most ${MAX_NOTE_CHARS} characters (it has ${trimmed.length})`);
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(trimmed)) throw new UsageError(`${field} must not contain control characters`);
  return trimmed;
}
