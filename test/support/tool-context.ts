import type { SessionResource, SessionResources } from '../../actors/tools/tool.js';

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
    await Promise.all(items.map((item) => item.dispose()));
  }
}
