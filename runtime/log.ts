// One line per event on stderr: `time level component message key=value ...`, or JSON with
// DEVICESTREAMS_LOG_FORMAT=json. Values named like secrets are redacted here, once, so a
// careless call site cannot leak a token.
const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof levels;

const secretKey = /token|secret|password|credential|authorization|private/i;
let threshold: number = levels[(process.env.DEVICESTREAMS_LOG_LEVEL as Level) ?? "info"] ?? levels.info;
const json = process.env.DEVICESTREAMS_LOG_FORMAT === "json";

export function setLogLevel(level: Level): void {
  threshold = levels[level];
}

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(component: string): Logger;
  enabled(level: Level): boolean;
}

function render(value: unknown): string {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return JSON.stringify(code ? `${code}: ${value.message}` : value.message);
  }
  if (typeof value === "string") return /^[\w.:/@+-]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

function redact(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = secretKey.test(k) && v !== undefined ? "[redacted]" : v;
  return out;
}

export function createLogger(component: string): Logger {
  const write = (level: Level, msg: string, fields?: Fields) => {
    if (levels[level] < threshold) return;
    const safe = fields ? redact(fields) : {};
    const time = new Date().toISOString();
    if (json) {
      const obj: Fields = { time, level, component, msg };
      for (const [k, v] of Object.entries(safe)) obj[k] = v instanceof Error ? render(v) : v;
      process.stderr.write(`${JSON.stringify(obj)}\n`);
      return;
    }
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${component} ${msg}`;
    for (const [k, v] of Object.entries(safe)) if (v !== undefined) line += ` ${k}=${render(v)}`;
    process.stderr.write(`${line}\n`);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (sub) => createLogger(`${component}/${sub}`),
    enabled: (level) => levels[level] >= threshold,
  };
}

/** `log` with `fields` added to every line (a pool's stream name), the caller's fields winning. */
export function withFields(log: Logger, fields: Fields): Logger {
  const add = (f?: Fields) => ({ ...fields, ...f });
  return {
    debug: (m, f) => log.debug(m, add(f)),
    info: (m, f) => log.info(m, add(f)),
    warn: (m, f) => log.warn(m, add(f)),
    error: (m, f) => log.error(m, add(f)),
    child: (sub) => withFields(log.child(sub), fields),
    enabled: (level) => log.enabled(level),
  };
}
