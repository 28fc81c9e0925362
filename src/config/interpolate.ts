/**
 * `${VAR}` and `${VAR:-default}` in config strings, so secrets stay in the
 * environment. A variable that is unset (and has no default) is an error
 * naming the path where it was used.
 */

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface InterpolationResult {
  value: unknown;
  problems: string[];
}

/** Replaces references in every string of a parsed YAML tree; never touches keys. */
export function interpolate(tree: unknown, env: Record<string, string | undefined>): InterpolationResult {
  const problems: string[] = [];
  const walk = (node: unknown, path: string): unknown => {
    if (typeof node === 'string') {
      return node.replace(REFERENCE, (_match, name: string, fallback: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        problems.push(`${path || '(root)'}: environment variable ${name} is not set`);
        return '';
      });
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, `${path}[${i}]`));
    if (node !== null && typeof node === 'object') {
      // fromEntries defines own keys: a "__proto__" key (refused in files by read-yaml, but a
      // tree built in code can have one) stays a key and never becomes the copy's prototype.
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, walk(value, path ? `${path}.${key}` : key)]));
    }
    return node;
  };
  return { value: walk(tree, ''), problems };
}
