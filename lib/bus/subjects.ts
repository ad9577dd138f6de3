import { randomUUID } from 'node:crypto';
import { BusError } from './bus.js';

/**
 * Every subject troupe uses is built here and nowhere else (DESIGN.md), so the naming scheme
 * can change in one place and a wildcard subscription can rely on where each id sits:
 *
 *   troupe.<ns>.op.<session_id>               ops for one session
 *   troupe.<ns>.evt.<root_id>.<session_id>    events; the root id first, so `evt.<root>.>`
 *                                             follows a whole tree of sub-agents
 *   troupe.<ns>.place                         placement requests (queue group of the hosts)
 *   troupe.<ns>.ctl.<name>                    control requests such as `list`
 *   troupe.<ns>.tree.<root_id>.<name>         coordination inside one session tree
 *                                             (sub-agent slots, shared approvals)
 *   troupe.<ns>.opq.<session_id>              ops queued in JetStream for a session (NATS only)
 *   troupe.<ns>.log.<root_id>.<session_id>    a session's log records in JetStream: rollout
 *                                             lines and call records (NATS only)
 *   troupe.<ns>.jobs.<job_id>.<part>          an agent job's records in JetStream: `log`, one
 *                                             `item.<row>` per item outcome, `end` (NATS only)
 *   troupe.<ns>.jobrpt.<job_id>               an item's result handed to the job's runner
 *   _INBOX.<unique>                           reply subjects, as NATS names them
 *
 * It also holds the subject grammar both transports enforce, so they reject the same input.
 */

export const DEFAULT_NAMESPACE = 'default';

const ROOT = 'troupe';
const INBOX_PREFIX = '_INBOX';
/** Characters that would split a token or turn it into a wildcard. */
const TOKEN_FORBIDDEN = /[.*>\s]/;
const WHITESPACE = /\s/;

/** An id or namespace cannot be used as one subject token. */
export class InvalidSubjectTokenError extends BusError {
  override name = 'InvalidSubjectTokenError';
  constructor(
    readonly token: string,
    readonly what: string,
  ) {
    super(`invalid ${what} ${JSON.stringify(token)}: must be non-empty and contain no '.', '*', '>' or whitespace`);
  }
}

/** A subject (or subscription filter) breaks the NATS subject grammar. */
export class InvalidSubjectError extends BusError {
  override name = 'InvalidSubjectError';
  constructor(
    readonly subject: string,
    detail: string,
  ) {
    super(`invalid subject ${JSON.stringify(subject)}: ${detail}`);
  }
}

/** Returns `token` if it can stand as one subject token; `what` names it in the error. */
export function assertToken(token: string, what = 'token'): string {
  if (token.length === 0 || TOKEN_FORBIDDEN.test(token)) throw new InvalidSubjectTokenError(token, what);
  return token;
}

export interface Subjects {
  readonly namespace: string;
  op(sessionId: string): string;
  event(rootId: string, sessionId: string): string;
  /** Events of the root session and every sub-agent under it. */
  tree(rootId: string): string;
  allEvents(): string;
  place(): string;
  control(name: string): string;
  /** Coordination of one session tree, served by or broadcast to its sessions. */
  treeControl(rootId: string, name: string): string;
  /** A session's durable op queue (JetStream). */
  opQueue(sessionId: string): string;
  allOpQueues(): string;
  /** A session's log records (JetStream): rollout lines and tool-call records. */
  sessionLog(rootId: string, sessionId: string): string;
  allSessionLogs(): string;
  /** An agent job's records (JetStream): `log`, `item.<row_index>` or `end`. */
  job(jobId: string, part: string): string;
  /** Every record of one job, or (no id) of every job. */
  allJobs(jobId?: string): string;
  /** Where a job's runner takes the results of items whose agent runs elsewhere. */
  jobReport(jobId: string): string;
}

/** The subjects of one namespace; every id is checked with `assertToken`. */
export function subjects(namespace: string = DEFAULT_NAMESPACE): Subjects {
  const base = `${ROOT}.${assertToken(namespace, 'namespace')}`;
  return Object.freeze({
    namespace,
    op: (sessionId: string) => `${base}.op.${assertToken(sessionId, 'session id')}`,
    event: (rootId: string, sessionId: string) => `${base}.evt.${assertToken(rootId, 'root id')}.${assertToken(sessionId, 'session id')}`,
    tree: (rootId: string) => `${base}.evt.${assertToken(rootId, 'root id')}.>`,
    allEvents: () => `${base}.evt.>`,
    place: () => `${base}.place`,
    control: (name: string) => `${base}.ctl.${assertToken(name, 'control name')}`,
    treeControl: (rootId: string, name: string) => `${base}.tree.${assertToken(rootId, 'root id')}.${assertToken(name, 'control name')}`,
    opQueue: (sessionId: string) => `${base}.opq.${assertToken(sessionId, 'session id')}`,
    allOpQueues: () => `${base}.opq.>`,
    sessionLog: (rootId: string, sessionId: string) => `${base}.log.${assertToken(rootId, 'root id')}.${assertToken(sessionId, 'session id')}`,
    allSessionLogs: () => `${base}.log.>`,
    job: (jobId: string, part: string) => `${base}.jobs.${assertToken(jobId, 'job id')}.${part}`,
    allJobs: (jobId?: string) => (jobId === undefined ? `${base}.jobs.>` : `${base}.jobs.${assertToken(jobId, 'job id')}.>`),
    jobReport: (jobId: string) => `${base}.jobrpt.${assertToken(jobId, 'job id')}`,
  });
}

/** A fresh reply subject, unique across processes. */
export function inbox(): string {
  return `${INBOX_PREFIX}.${randomUUID().replaceAll('-', '')}`;
}

export interface EventAddress {
  readonly root_id: string;
  readonly session_id: string;
}

/**
 * Reads the ids back out of an event subject (what a `tree` or `allEvents` subscriber sees in
 * `delivery.subject`). When `namespace` is given the subject must belong to it.
 */
export function parseEventSubject(subject: string, namespace?: string): EventAddress {
  const tokens = subject.split('.');
  const [root, ns, kind, rootId, sessionId] = tokens;
  if (tokens.length !== 5 || root !== ROOT || kind !== 'evt' || ns === undefined) {
    throw new InvalidSubjectError(subject, `not an event subject (${ROOT}.<ns>.evt.<root_id>.<session_id>)`);
  }
  if (namespace !== undefined && ns !== namespace) {
    throw new InvalidSubjectError(subject, `belongs to namespace ${JSON.stringify(ns)}, not ${JSON.stringify(namespace)}`);
  }
  return { root_id: assertToken(rootId ?? '', 'root id'), session_id: assertToken(sessionId ?? '', 'session id') };
}

function splitSubject(subject: string): string[] {
  if (subject.length === 0) throw new InvalidSubjectError(subject, 'empty');
  if (WHITESPACE.test(subject)) throw new InvalidSubjectError(subject, 'contains whitespace');
  const tokens = subject.split('.');
  if (tokens.some((t) => t.length === 0)) throw new InvalidSubjectError(subject, 'has an empty token');
  return tokens;
}

/** A subject a message may be published on: concrete tokens only, no wildcards. */
export function assertPublishSubject(subject: string): void {
  for (const token of splitSubject(subject)) {
    if (token.includes('*') || token.includes('>')) {
      throw new InvalidSubjectError(subject, 'wildcards are only allowed when subscribing');
    }
  }
}

/**
 * A subscription filter: `*` stands for exactly one token, a final `>` for one or more.
 * Wildcard characters inside a longer token are rejected rather than taken literally, so a
 * typo cannot silently subscribe to nothing.
 */
export function assertSubscribeSubject(filter: string): void {
  const tokens = splitSubject(filter);
  tokens.forEach((token, i) => {
    if (token === '*') return;
    if (token === '>') {
      if (i !== tokens.length - 1) throw new InvalidSubjectError(filter, "'>' must be the last token");
      return;
    }
    if (token.includes('*') || token.includes('>')) {
      throw new InvalidSubjectError(filter, `wildcard inside the token ${JSON.stringify(token)}`);
    }
  });
}
