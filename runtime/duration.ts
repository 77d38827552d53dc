// Go-style durations ("500ms", "30s", "15m", "1h30m"), the notation Kubernetes users already write.
const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) break;
    total += Number(m[1]) * unitMs[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length || s.length === 0) {
    throw new Error(`"${text}" is not a duration: write for example 500ms, 30s, 15m, 1h30m, or 0 for none`);
  }
  // Beyond whole milliseconds a double holds exactly, a duration would not read back from its own
  // text (formatDuration) and could be Infinity: refuse it rather than round it to nonsense.
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) {
    throw new Error(`"${text}" is too long a duration: at most ${formatDuration(Number.MAX_SAFE_INTEGER)}`);
  }
  return ms;
}

/** The shortest exact Go-style text: 90_000 -> "1m30s", 1500 -> "1s500ms"; parseDuration reads it back. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  const milli = ms % 1000;
  let rest = (ms - milli) / 1000;
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  const s = rest - m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}${milli ? `${milli}ms` : ""}`;
}
