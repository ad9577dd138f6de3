/** Freeze a plain JSON value and everything in it, so it can be shared without copying. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * A deep-frozen copy of a plain JSON value (objects, arrays, primitives): what `structuredClone`
 * followed by `deepFreeze` gives for such values, in one pass and without the serializer, which
 * costs more than the copying for the small items a history holds.
 */
export function frozenCopy<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy)) as T;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = frozenCopy((value as Record<string, unknown>)[key]);
  return Object.freeze(copy) as T;
}

/**
 * `compute`, remembered per argument when the argument is frozen: a frozen value cannot change,
 * so what was computed from it stays right for as long as it lives (and goes with it).
 */
export function memoizeFrozen<K extends object, V>(compute: (key: K) => V): (key: K) => V {
  const memo = new WeakMap<K, V>();
  return (key) => {
    if (memo.has(key)) return memo.get(key) as V;
    const value = compute(key);
    if (Object.isFrozen(key)) memo.set(key, value);
    return value;
  };
}
