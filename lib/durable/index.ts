export { DurableError, LeaseLostError } from './errors.js';
export { durableNames, type DurableNames } from './names.js';
export { LogRecord, LoggedOutput, SessionPurpose } from './records.js';
export { DurableStore } from './store.js';
export { SessionLog, readSessionLog, type LogEntry } from './session-log.js';
export { Outbox, OutboxFullError, OutboxDiscardedError, DEFAULT_OUTBOX_LIMITS, type OutboxLimits } from './outbox.js';
export { untilDone, GaveUpError } from './patience.js';
export { OpQueue, type OpFeed, type QueuedSubmission } from './op-queue.js';
export { Leases, LeaseValue, leaseTiming, DEFAULT_LEASE_MS, type LeaseTiming, type SeenLease } from './leases.js';
export { rebuildSession, RebuildError, type RebuiltSession, type OpenTurn, type LoggedCall } from './rebuild.js';
export {
  durableBindings,
  journaledRollout,
  INTERRUPTED_BY_FAILOVER,
  type RolloutSink,
  type RuntimeHooks,
  type SessionDurability,
  type ResumedTurn,
} from './session-durability.js';
export { HostDurability, type AdoptionTarget, type FedSession, type SessionActivity } from './host-durability.js';
export { writeRolloutFile } from './rollout-file.js';
export { GatewayDurability } from './gateway-durability.js';
export { SeqFilter } from './seq-filter.js';
