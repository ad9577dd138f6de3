import type { Bus, Subscription } from '../../lib/bus/bus.js';
import { subjects } from '../../lib/bus/subjects.js';
import { log } from '../../lib/log.js';
import type { ApprovalMemory } from '../tools/tool.js';

/**
 * `approved_for_session` decisions, shared by every session of a tree: a grant is kept here
 * and broadcast on the tree's subject, and grants from other sessions (on any worker) arrive
 * the same way. A new sub-agent starts with its parent's set.
 */
export class TreeApprovals implements ApprovalMemory {
  readonly #keys: Set<string>;
  readonly #bus: Bus;
  readonly #onHeard: ((key: string) => void) | undefined;
  readonly #subject: string;
  #subscription: Subscription | null = null;

  constructor(
    bus: Bus,
    namespace: string,
    rootId: string,
    initial: readonly string[] = [],
    /** Called for each grant first heard from another session (a durable session logs it). */
    onHeard?: (key: string) => void,
  ) {
    this.#onHeard = onHeard;
    this.#bus = bus;
    this.#keys = new Set(initial);
    this.#subject = subjects(namespace).treeControl(rootId, 'approvals');
  }

  start(): void {
    this.#subscription = this.#bus.subscribe(this.#subject, (message) => {
      if (message.kind !== 'tree_approval' || this.#keys.has(message.key)) return;
      this.#keys.add(message.key);
      this.#onHeard?.(message.key);
    });
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  snapshot(): string[] {
    return [...this.#keys];
  }

  grant(key: string): void {
    this.#keys.add(key);
    this.#bus.publish(this.#subject, { kind: 'tree_approval', key }).catch((error: unknown) => {
      log.warn({ err: error, key }, 'could not share an approval with the session tree');
    });
  }

  async stop(): Promise<void> {
    await this.#subscription?.unsubscribe();
    this.#subscription = null;
  }
}
