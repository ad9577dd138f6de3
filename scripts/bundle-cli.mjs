// The CLI as one bundle (`npm run build`, after tsc): bin/troupe.js runs dist/troupe/main.js.
//
// Why: a one-shot `troupe exec` imported ~455 ES modules before its first model request, and
// resolving, reading and linking them one by one was most of its start-up CPU time (see
// bench/README.md, startup). The sources and the two ESM-only dependencies on that path
// (openai, which imports every API resource, and zod) are bundled; each command is a chunk of
// its own, loaded when that command runs. Everything else stays a package import: xstate (the
// tests' `--conditions=development` picks its development build), pino (its transports load
// files by path), the native and WebAssembly parsers, and what only some commands load (NATS,
// MCP, OpenTelemetry). The library (`troupe`, `troupe/protocol`, `troupe/testing`) is tsc's
// output in dist/, unbundled.
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const out = join(root, 'dist', 'troupe');
const BUNDLED = new Set(['openai', 'zod']);

const { dependencies } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const external = Object.keys(dependencies)
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`]);

rmSync(out, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'cli/main.ts',
    // The tool launcher runs as a process of its own, found beside the code that starts it.
    'launcher-process': 'actors/tools/launcher/launcher-process.ts',
  },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  sourcemap: 'linked',
  logLevel: 'warning',
});
// The inspector serves its page from beside its code.
cpSync(join(root, 'cli', 'inspector', 'page'), join(out, 'page'), { recursive: true });
