import { z } from 'zod';
import { describeZodError, type FunctionCallItem } from '../../protocol/index.js';
import type { ToolSpecJson } from '../../lib/model/types.js';
import type { ToolHandler } from './tool.js';
import { deepFreeze } from '../../lib/freeze.js';

/** A call the router could make sense of, or the reason it could not (which the model is told). */
export type RoutedCall = { readonly ok: true; readonly handler: ToolHandler<unknown>; readonly args: unknown } | { readonly ok: false; readonly error: string };

/**
 * Tools by name. One registry builds both the list the model is shown (JSON schema generated
 * from each tool's zod spec, or given directly) and the dispatch of its calls, so the two cannot drift apart.
 */
export class ToolRegistry {
  readonly #handlers = new Map<string, ToolHandler<unknown>>();
  /** The model-visible list, built once per change: every request sends it. */
  #specs: readonly ToolSpecJson[] | null = null;
  /**
   * The registries `with` made from this one, by the handler put in: every session of a host
   * swaps its own spawn_agent in, and sessions with the same roles get the same handler, so
   * they share one registry and with it one spec list (whose JSON a request encodes once).
   */
  #withs = new WeakMap<ToolHandler<unknown>, ToolRegistry>();

  constructor(handlers: Iterable<ToolHandler<unknown>> = []) {
    for (const handler of handlers) this.register(handler);
  }

  register(handler: ToolHandler<unknown>): void {
    if (this.#handlers.has(handler.name)) throw new Error(`tool ${handler.name} is registered twice`);
    this.#handlers.set(handler.name, handler);
    this.#specs = null;
    this.#withs = new WeakMap();
  }

  /**
   * A new registry with this one's tools followed by `extra` (a session's MCP tools on top of
   * the host's core tools). A name already taken throws, as `register` does.
   */
  extend(extra: Iterable<ToolHandler<unknown>>): ToolRegistry {
    return new ToolRegistry([...this.#handlers.values(), ...extra]);
  }

  /** A new registry with these tools left out (a review thread has no sub-agent tools). */
  without(names: Iterable<string>): ToolRegistry {
    const excluded = new Set(names);
    return new ToolRegistry([...this.#handlers.values()].filter((h) => !excluded.has(h.name)));
  }

  /** A new registry with `handler` in place of the tool of the same name. */
  with(handler: ToolHandler<unknown>): ToolRegistry {
    let derived = this.#withs.get(handler);
    if (!derived) {
      derived = new ToolRegistry([...this.#handlers.values()].map((h) => (h.name === handler.name ? handler : h)));
      this.#withs.set(handler, derived);
    }
    return derived;
  }

  /** A new registry with only the tools named in `names`. */
  only(names: ReadonlySet<string>): ToolRegistry {
    return new ToolRegistry([...this.#handlers.values()].filter((h) => names.has(h.name)));
  }

  get(name: string): ToolHandler<unknown> | undefined {
    return this.#handlers.get(name);
  }

  specs(): readonly ToolSpecJson[] {
    this.#specs ??= Object.freeze([...this.#handlers.values()].map(specOf));
    return this.#specs;
  }

  /** Find the handler and validate the arguments; failures name what was wrong. */
  route(call: Pick<FunctionCallItem, 'name' | 'arguments'>): RoutedCall {
    const handler = this.#handlers.get(call.name);
    if (!handler) return { ok: false, error: `unknown tool "${call.name}"; available: ${[...this.#handlers.keys()].join(', ')}` };
    let raw: unknown;
    try {
      raw = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments);
    } catch (error) {
      return { ok: false, error: `the arguments of ${call.name} are not valid JSON: ${(error as Error).message}` };
    }
    const parsed = handler.args.safeParse(raw);
    if (!parsed.success) return { ok: false, error: `invalid arguments for ${call.name}: ${describeZodError(parsed.error)}` };
    return { ok: true, handler, args: parsed.data };
  }
}

/** A handler's model-visible spec, made once: registries derived with `without`/`extend` share it. */
const specs = new WeakMap<ToolHandler<unknown>, ToolSpecJson>();

function specOf(handler: ToolHandler<unknown>): ToolSpecJson {
  let spec = specs.get(handler);
  if (!spec) {
    spec = deepFreeze({
      type: 'function' as const,
      name: handler.name,
      description: handler.description,
      parameters: handler.parameters ?? modelSchema(handler.args),
    });
    specs.set(handler, spec);
  }
  return spec;
}

function modelSchema(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}
