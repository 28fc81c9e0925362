/**
 * Reads a YAML config file into plain data, turning YAML's errors into
 * one-line problems with a path or a line number.
 */
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError } from '../errors';
import { formatPath } from './format-issues';

/**
 * Keys that name a prototype slot. yaml keeps `__proto__` as an own key, but a
 * later `obj[key] = value` copy sets the prototype instead (interpolation did,
 * and zod reads inherited properties: a target's `__proto__: { allow: { vacuum:
 * true } }` turned vacuum on) or drops it (zod's records do, silently).
 * `constructor` and `prototype` shadow what code expects on every object.
 */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Reads and parses a config file: plain data, or a ConfigError naming each problem. */
export function readYamlFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [`cannot read the file (${code ?? (err as Error).message})`]);
  }
  return parseYaml(text, path);
}

/**
 * Parses config text into plain data: a mapping with no key from
 * FORBIDDEN_KEYS and no alias cycle, anywhere; else a ConfigError.
 */
export function parseYaml(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  // Duplicates are found below with their path; YAML's own check only gives a line.
  // logLevel 'error': yaml's warnings (a !!binary key stringified...) go to process.emitWarning,
  // two more lines on stderr beside the one-line problem.
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter, prettyErrors: false, logLevel: 'error' });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => `line ${lineCounter.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`),
    );
  }
  const duplicates = findDuplicateKeys(doc.contents as Node | null, '', lineCounter);
  if (duplicates.length > 0) throw new ConfigError(source, duplicates);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // An alias without its anchor, or an alias bomb: YAML only finds out while building values.
    throw new ConfigError(source, [`(root): ${String((err as Error).message).split('\n')[0]}`]);
  }
  // On the built values, not on YAML's nodes: a key's final spelling only exists here (an
  // escape, an alias, a !!binary key, a YAML 1.1 merge all end up as an own key of the object).
  const unsafe = findUnsafeKeys(value, [], new Set());
  if (unsafe.length > 0) throw new ConfigError(source, unsafe);
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(source, ['(root): expected a mapping of settings']);
  }
  return value;
}

function findDuplicateKeys(node: Node | null, path: string, lines: LineCounter): string[] {
  const problems: string[] = [];
  if (isMap(node)) {
    const seen = new Set<string>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node & { value?: unknown };
      const key = String(keyNode && 'value' in keyNode ? keyNode.value : pair.key);
      const childPath = path ? `${path}.${key}` : key;
      if (seen.has(key)) {
        const line = keyNode?.range ? ` (line ${lines.linePos(keyNode.range[0]).line})` : '';
        problems.push(`${path || '(root)'}: duplicate key ${JSON.stringify(key)}${line}`);
      }
      seen.add(key);
      problems.push(...findDuplicateKeys(pair.value as Node | null, childPath, lines));
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => problems.push(...findDuplicateKeys(item as Node, `${path}[${i}]`, lines)));
  }
  return problems;
}

/**
 * Problems for every key in FORBIDDEN_KEYS and every alias cycle (`&a [*a]`,
 * which yaml builds as a circular array: walking it would never end).
 * `ancestors` holds the objects on the current path only, so a shared alias
 * that is not a cycle is fine.
 */
function findUnsafeKeys(value: unknown, path: (string | number)[], ancestors: Set<object>): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (ancestors.has(value)) return [`${formatPath(path)}: an alias to a mapping or list that contains it is not allowed (it never ends)`];
  ancestors.add(value);
  const problems: string[] = [];
  if (Array.isArray(value)) {
    value.forEach((item, i) => problems.push(...findUnsafeKeys(item, [...path, i], ancestors)));
  } else {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) problems.push(`${formatPath([...path, key])}: a key named ${JSON.stringify(key)} is not allowed (it would reach the object's prototype)`);
      else problems.push(...findUnsafeKeys((value as Record<string, unknown>)[key], [...path, key], ancestors));
    }
  }
  ancestors.delete(value);
  return problems;
}
