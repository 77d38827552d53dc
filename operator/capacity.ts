// Caps on concurrent streams, overall and per namespace. Decisions are synchronous and in memory
// on the leader, so two reconciles running side by side cannot both take the last slot. The
// leader seeds it from the cache (streams that already have a relay keep their slot, even if a
// lower cap was configured since) before its workers start.
export class Capacity {
  private readonly holders = new Map<string, string>();
  private readonly perNamespace = new Map<string, number>();
  private readonly waiting = new Set<string>();
  readonly maxTotal: number;
  readonly maxPerNamespace: number;

  constructor(maxTotal: number, maxPerNamespace: number) {
    this.maxTotal = maxTotal;
    this.maxPerNamespace = maxPerNamespace;
  }

  /** Takes a slot for `key` unless it has one; returns why not when the caps are reached. */
  acquire(key: string, namespace: string): string | undefined {
    if (this.holders.has(key)) return undefined;
    const inNamespace = this.perNamespace.get(namespace) ?? 0;
    let refusal: string | undefined;
    if (this.holders.size >= this.maxTotal) {
      refusal = `the operator already runs ${this.holders.size} streams, its limit (--max-streams=${this.maxTotal}); this stream waits for one to end`;
    } else if (inNamespace >= this.maxPerNamespace) {
      refusal = `namespace "${namespace}" already has ${inNamespace} streams, its limit (--max-streams-per-namespace=${this.maxPerNamespace}); this stream waits for one to end`;
    }
    if (refusal) {
      this.waiting.add(key);
      return refusal;
    }
    this.seed(key, namespace);
    return undefined;
  }

  /** Records a slot without checking the caps (for streams that already run). */
  seed(key: string, namespace: string): void {
    if (this.holders.has(key)) return;
    this.holders.set(key, namespace);
    this.perNamespace.set(namespace, (this.perNamespace.get(namespace) ?? 0) + 1);
    this.waiting.delete(key);
  }

  /** Frees the slot of `key`; returns the streams that were waiting for one, to look at again. */
  release(key: string): string[] {
    this.waiting.delete(key);
    const ns = this.holders.get(key);
    if (ns === undefined) return [];
    this.holders.delete(key);
    const left = (this.perNamespace.get(ns) ?? 1) - 1;
    if (left > 0) this.perNamespace.set(ns, left);
    else this.perNamespace.delete(ns);
    return [...this.waiting];
  }

  has(key: string): boolean {
    return this.holders.has(key);
  }

  get size(): number {
    return this.holders.size;
  }

  clear(): void {
    this.holders.clear();
    this.perNamespace.clear();
    this.waiting.clear();
  }
}
