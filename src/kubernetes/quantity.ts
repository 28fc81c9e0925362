/**
 * Kubernetes resource quantities (`250m`, `1.5`, `123456789n`, `512Mi`,
 * `1G`, `1e3`) as plain numbers: CPU in cores, memory in bytes. The
 * library's own `quantityToScalar` is not exported and throws on decimal
 * memory (`1.5Gi`), which the API accepts.
 */

/** Multipliers of the suffixes the API accepts (resource.Quantity). */
const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$/;

/**
 * A quantity as a number (`"250m"` → 0.25, `"128Mi"` → 134217728); undefined
 * when it is missing or not a quantity.
 */
export function parseQuantity(quantity: string | number | undefined | null): number | undefined {
  if (quantity === undefined || quantity === null) return undefined;
  if (typeof quantity === 'number') return Number.isFinite(quantity) ? quantity : undefined;
  const m = quantity.trim().match(QUANTITY);
  if (!m) return undefined;
  const [, digits, exponent, suffix] = m;
  const value = Number(digits) * (exponent ? 10 ** Number(exponent.slice(1)) : SUFFIX[suffix ?? '']!);
  return Number.isFinite(value) ? value : undefined;
}
