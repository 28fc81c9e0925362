/**
 * Reads a YAML config file into plain data, turning YAML's errors into
 * one-line problems with a path or a line number.
 */
import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError } from '../errors';

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

export function parseYaml(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  // Duplicates are found below with their path; YAML's own check only gives a line.
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter, prettyErrors: false });
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
