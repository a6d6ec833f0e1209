/** fleet's API answered with an error status (or an unreadable body). */
export class FleetApiError extends Error {
  override readonly name = 'FleetApiError';
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    message: string,
    readonly machineId?: string,
    readonly key?: string,
    options?: { cause?: unknown },
  ) {
    super(`fleet API ${method} ${path} failed (${status}): ${message}${machineId ? ` [machine ${machineId}${key ? `, key ${key}` : ''}]` : ''}`, options);
  }
}

/** fleet's API could not be reached at all (socket missing, connection refused, timeout). Retryable. */
export class FleetUnavailableError extends Error {
  override readonly name = 'FleetUnavailableError';
  readonly retryable = true;
  constructor(
    readonly target: string,
    readonly method: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(`fleet API at ${target} unreachable during ${method} ${path}: ${(options?.cause as Error | undefined)?.message ?? 'unknown'}`, options);
  }
}
