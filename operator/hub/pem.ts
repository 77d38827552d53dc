// PEM blocks joined into one chain, each on its own lines (a block without a final newline would
// run into the next one's BEGIN line, which OpenSSL rejects).
export function pemChain(...blocks: string[]): string {
  return blocks.map((b) => (b.endsWith("\n") ? b : `${b}\n`)).join("");
}
