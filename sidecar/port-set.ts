// The ports of one allow-list service: one port, or ranges and ports (`21,30000-30100`), as FTP's
// passive mode needs (its data connections go to ports the server picks from a range).

export type PortSet = ReadonlyArray<{ first: number; last: number }>;

/** Enough for a control port and a few passive ranges; a longer list is a mistake, not a need. */
const maxItems = 16;

function port(text: string, whole: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (n === 0) throw new Error("port 0 is not a target");
  if (!(n >= 1 && n <= 65535)) {
    throw new Error(`"${whole}" is not a port or range: write host:port or host:first-last, e.g. 127.0.0.1:22`);
  }
  return n;
}

/** Parses `22`, `30000-30100` or `21,30000-30100`; throws a message naming what is wrong. */
export function parsePortSet(text: string): PortSet {
  const items = text.split(",");
  if (items.length > maxItems) throw new Error(`at most ${maxItems} ports or ranges per service, not ${items.length}`);
  return items.map((item) => {
    const [a, b, ...rest] = item.split("-");
    if (rest.length) throw new Error(`"${item}" is not a port or range: write first-last, e.g. 30000-30100`);
    const first = port(a!, item);
    const last = b === undefined ? first : port(b, item);
    if (last < first) throw new Error(`range ${item} ends before it starts`);
    return { first, last };
  });
}

/** As an allow-list writes it: `21,30000-30100`. */
export function portSetText(ports: PortSet): string {
  return ports.map((r) => (r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`)).join(",");
}
