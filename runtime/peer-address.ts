// Who is calling, for rate limits and connection caps: the IPv4 address of a gRPC peer ("1.2.3.4:5678",
// "::ffff:1.2.3.4:5678"), or the /64 of an IPv6 one ("2001:db8::1:5678"). A host usually holds a
// whole /64, so keying on its full IPv6 address would hand it 2^64 fresh buckets.
import { isIPv4, isIPv6 } from "node:net";

export function peerKey(peer: string): string {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(peer);
  const address = (m ? m[1]! : peer).replace(/%.*$/, ""); // an IPv6 zone names a local interface only
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address) || !isIPv6(address)) return address;
  return `${ipv6Groups(address).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, "::" expanded, as lowercase hex without zeros in front. */
function ipv6Groups(address: string): string[] {
  const [head = "", tail] = address.split("::");
  const part = (s: string) => (s ? s.split(":") : []);
  const h = part(head);
  const t = tail === undefined ? [] : part(tail);
  // An embedded IPv4 address ("::1.2.3.4") fills two groups.
  const width = (g: string[]) => g.length + (g.at(-1)?.includes(".") ? 1 : 0);
  const zeros = tail === undefined ? [] : Array<string>(8 - width(h) - width(t)).fill("0");
  return [...h, ...zeros, ...t].map((g) => (g.includes(".") ? g : Number.parseInt(g, 16).toString(16)));
}
