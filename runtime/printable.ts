// Text a peer chose (a device's refusal, a dial error) on its way to a terminal, a log line or a
// Kubernetes condition: control and format characters (ESC sequences, CR, bidi overrides) are
// shown as escapes, so a device cannot repaint a user's terminal or disguise what it said.
// One helper for every hop that passes such text on (relay, hub) and every end that shows it.

/** C0, DEL, C1 (Cc) and invisible format characters (Cf: bidi overrides, zero-width). */
const unsafe = /[\p{Cc}\p{Cf}]/gu;

/** Default cap: a refusal is a sentence, not a payload. */
export const maxPeerTextChars = 1024;

/** `text` with every control or format character escaped (`\x1b`, `\u202e`) and cut to `maxChars`. */
export function printable(text: string, maxChars = maxPeerTextChars): string {
  const cut = text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  return cut.replace(unsafe, (c) => {
    const n = c.codePointAt(0)!;
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}
