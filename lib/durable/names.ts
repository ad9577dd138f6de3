/**
 * The JetStream streams and the KV bucket of one namespace. Subjects live in bus/subjects.ts;
 * these are the names of what stores them, kept here and nowhere else.
 */
export interface DurableNames {
  /** Events (`evt.>`, captured as they are published) and log records (`log.>`): the sessions' truth. */
  readonly logStream: string;
  /** Ops waiting for their session (`opq.>`), a work queue: an op leaves once its session took it. */
  readonly opStream: string;
  /** Session leases: key = session id, value = LeaseValue. */
  readonly leaseBucket: string;
  /** The durable consumer that feeds one session its ops; it outlives the worker. */
  opConsumer(sessionId: string): string;
}

/** Stream, bucket and consumer names allow fewer characters than subject tokens. */
function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9_-]/g, '_');
}

export function durableNames(namespace: string): DurableNames {
  const ns = safe(namespace);
  return Object.freeze({
    logStream: `TROUPE_LOG_${ns}`,
    opStream: `TROUPE_OPS_${ns}`,
    leaseBucket: `troupe_leases_${ns}`,
    opConsumer: (sessionId: string) => `op_${safe(sessionId)}`,
  });
}
