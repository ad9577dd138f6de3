/** Short names for sub-agents, so people (and the parent model) can tell them apart. Two rows of twelve, left as written. */
// prettier-ignore
const NAMES = [
  'Ada', 'Basil', 'Cleo', 'Dara', 'Emil', 'Fern', 'Gus', 'Hana', 'Ivo', 'Juno', 'Kai', 'Lark',
  'Milo', 'Nell', 'Otto', 'Pia', 'Quin', 'Rhea', 'Sami', 'Tove', 'Uma', 'Vik', 'Wren', 'Yara',
];

/** The nth nickname; past the list, names get a number (`Ada-2`). */
export function nickname(n: number): string {
  const name = NAMES[n % NAMES.length]!;
  const round = Math.floor(n / NAMES.length);
  return round === 0 ? name : `${name}-${round + 1}`;
}
