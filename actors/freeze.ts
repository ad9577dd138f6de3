/** Freeze a plain JSON value and everything in it, so it can be shared without copying. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
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
