import type { SessionResource, SessionResources, ToolContext } from '../../actors/tools/tool.js';
import { buildTurnContext, settingsFromConfig } from '../../machines/turn-context.js';
import type { AskForApproval, EventMsg, SandboxPolicy } from '../../protocol/index.js';

/** SessionResources for tests that drive a tool handler directly; `disposeAll` plays the session's end. */
export class TestResources implements SessionResources {
  readonly #items = new Map<string, SessionResource>();

  get<T extends SessionResource>(key: string, create: () => T): T {
    let item = this.#items.get(key);
    if (!item) {
      item = create();
      this.#items.set(key, item);
    }
    return item as T;
  }

  async disposeAll(): Promise<void> {
    const items = [...this.#items.values()];
    this.#items.clear();
    await Promise.all(items.map(async (item) => item.dispose()));
  }
}

/**
 * A ToolContext for driving a tool handler directly: a turn in `cwd` under the given policies,
 * events collected in `events`, rules read from `home` when given.
 */
export function makeToolContext(
  cwd: string,
  options: { sandbox?: SandboxPolicy; approval?: AskForApproval; home?: string } = {},
): { ctx: ToolContext; events: EventMsg[] } {
  const settings = settingsFromConfig(
    { cwd, approval_policy: options.approval ?? 'never', sandbox_policy: options.sandbox ?? 'workspace-write' },
    { model: 'test-model', cwd, base_instructions: '' },
  );
  const events: EventMsg[] = [];
  const ctx: ToolContext = {
    sessionId: 'session-1',
    callId: 'call-1',
    turn: buildTurnContext(settings, 'turn-1', {}),
    signal: new AbortController().signal,
    resources: new TestResources(),
    ...(options.home !== undefined ? { home: options.home } : {}),
    emit: (msg) => events.push(msg),
  };
  return { ctx, events };
}
