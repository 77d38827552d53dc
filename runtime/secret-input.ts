// Tokens come from a file (a mounted Secret) or the environment, never from a flag's value in
// `ps` unless the user insists.
import { readFileSync } from "node:fs";
import { DeviceStreamsError } from "./errors.ts";

export function readToken(inline: string | undefined, file: string | undefined, what: string, flag: string): string {
  if (file) {
    try {
      const token = readFileSync(file, "utf8").trim();
      if (token) return token;
    } catch (err) {
      throw new DeviceStreamsError("DS_CONFIG", `cannot read the ${what} from ${file}: ${(err as Error).message}`);
    }
    throw new DeviceStreamsError("DS_CONFIG", `${file} is empty; it should hold the ${what}`);
  }
  if (inline) return inline;
  throw new DeviceStreamsError(
    "DS_USAGE",
    `the ${what} is required: pass --${flag}-file PATH (or --${flag}, or the matching DEVICESTREAMS_* variable)`,
  );
}
