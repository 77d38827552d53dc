// Connections per source address, so that one host cannot take every slot of the gateway. An
// address is remembered only while it has a connection open: the map is bounded by the
// connections themselves (which the global cap bounds).
export class SourceCaps {
  private readonly open = new Map<string, number>();

  private readonly perSource: number;

  constructor(perSource: number) {
    this.perSource = perSource;
  }

  /** Counts a new connection from `source`; false (and nothing counted) when it is at its cap. */
  take(source: string): boolean {
    const n = this.open.get(source) ?? 0;
    if (n >= this.perSource) return false;
    this.open.set(source, n + 1);
    return true;
  }

  release(source: string): void {
    const n = this.open.get(source) ?? 0;
    if (n <= 1) this.open.delete(source);
    else this.open.set(source, n - 1);
  }

  get sources(): number {
    return this.open.size;
  }
}
