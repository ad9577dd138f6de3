#!/usr/bin/env node
// The package's entry point. The CLI is compiled and bundled into dist/troupe/ by `npm run
// build` (scripts/bundle-cli.mjs), which `npm install` and `npm ci` run through `prepare`.
import { main } from '../dist/troupe/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`troupe: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
