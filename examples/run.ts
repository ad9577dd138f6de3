/** `npm run example -- NAME`: run one of the examples. */
const EXAMPLES = ['fanout', 'review', 'distributed', 'typed'] as const;

const name = process.argv[2];
if (!EXAMPLES.includes(name as (typeof EXAMPLES)[number])) {
  console.error(`usage: npm run example -- (${EXAMPLES.join(' | ')})${name === undefined ? '' : `; there is no example "${name}"`}`);
  process.exit(2);
}
await import(`./${name}.js`);
