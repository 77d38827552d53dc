// Kubernetes resource quantities ("250m", "1", "512Mi", "1e3"), parsed exactly: the operator compares
// a stream's resources with its ceiling and its defaults, and a float would call 0.1 and 100m unequal.

const pattern = /^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$/;
const binary: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const decimal: Record<string, number> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * The quantity in units of 10^-9 (rounded up, as Kubernetes rounds), or undefined when `text` is not
 * a quantity. Exponents beyond ±100 are clamped: such values are far outside any bound compared with.
 */
export function parseQuantity(text: string): bigint | undefined {
  const m = pattern.exec(text.trim());
  if (!m) return undefined;
  const [, sign, number, suffix = ""] = m as unknown as [string, string, string, string | undefined];
  const [whole, fraction = ""] = number.split(".");
  let value = BigInt(`${whole || "0"}${fraction}`);
  let exp10 = 9 - fraction.length;
  if (suffix in binary) value *= 1024n ** BigInt(binary[suffix]!);
  else if (suffix in decimal) exp10 += decimal[suffix]!;
  else exp10 += Math.max(-100, Math.min(100, Number(suffix.slice(1))));
  if (exp10 >= 0) value *= 10n ** BigInt(exp10);
  else {
    const div = 10n ** BigInt(-exp10);
    value = (value + div - 1n) / div;
  }
  return sign === "-" ? -value : value;
}

export const isQuantity = (text: string) => parseQuantity(text) !== undefined;

/** Negative, zero or positive as a < b, a = b, a > b; both must be quantities. */
export function compareQuantities(a: string, b: string): number {
  const x = parseQuantity(a);
  const y = parseQuantity(b);
  if (x === undefined || y === undefined) throw new Error(`not a quantity: "${x === undefined ? a : b}"`);
  return x < y ? -1 : x > y ? 1 : 0;
}
