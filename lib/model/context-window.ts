/**
 * Context windows of current OpenAI model families, in tokens. Longest prefix wins, so
 * `gpt-4.1-mini` finds `gpt-4.1` and `gpt-5.1-codex-max` finds `gpt-5`.
 */
const KNOWN_WINDOWS: ReadonlyArray<readonly [prefix: string, tokens: number]> = [
  ['gpt-5', 272_000],
  ['codex-mini', 200_000],
  ['gpt-4.1', 1_047_576],
  ['gpt-4o', 128_000],
  ['o4-mini', 200_000],
  ['o3', 200_000],
  ['o1-mini', 128_000],
  ['o1', 200_000],
  ['gpt-oss', 131_072],
];

/**
 * The context window of `model` when it belongs to a known family, else null (local and
 * third-party models: the caller must configure it). A provider prefix such as `openai/` is
 * ignored.
 */
export function knownContextWindow(model: string): number | null {
  const name = model.slice(model.lastIndexOf('/') + 1).toLowerCase();
  let best: readonly [string, number] | null = null;
  for (const entry of KNOWN_WINDOWS) {
    if (name.startsWith(entry[0]) && (best === null || entry[0].length > best[0].length)) best = entry;
  }
  return best === null ? null : best[1];
}

/**
 * A lookup that prefers an explicit setting: a number is used for every model, null means
 * "unknown" on purpose, undefined falls back to the table.
 */
export function contextWindowResolver(override: number | null | undefined): (model: string) => number | null {
  if (override !== undefined) return () => override;
  return knownContextWindow;
}
