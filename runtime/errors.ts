// Errors a user can meet carry a stable, searchable code (DS_*) and a message that says the
// cause and what to do, in the manner of undici's UND_ERR_* and ws's WS_ERR_*.
export class DeviceStreamsError extends Error {
  readonly code: string;
  /** Whether retrying the same operation later can succeed. */
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DeviceStreamsError";
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

export function describeError(err: unknown): string {
  if (err instanceof DeviceStreamsError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
