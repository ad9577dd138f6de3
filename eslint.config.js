// ESLint, flat config: typescript-eslint's type-checked rules over the TypeScript sources.
// `npm run lint`. Layout is prettier's job (`npm run format:check`) and import directions are
// dependency-cruiser's (`npm run deps:check`): no rule here overlaps either.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const node = { process: 'readonly', console: 'readonly', module: 'writable', require: 'readonly', __dirname: 'readonly' };

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      // vitest.config.ts is outside tsconfig.json's `include`: the default project checks it.
      parserOptions: { projectService: { allowDefaultProject: ['vitest.config.ts'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits loses its rejection, and an unhandled rejection ends the process.
      // `void p` does not count as handling it: await it, give it a `.catch` that does something,
      // or hand it to `inBackground` (lib/log.ts), which logs a rejection.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      // No promise where a plain callback or condition is expected (an async listener's
      // rejection goes nowhere).
      '@typescript-eslint/no-misused-promises': 'error',
      // A switch over a union names every member, or has a `default` that says what the rest do.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],

      // Tuned:
      // `_`-prefixed parameters and bindings are unused on purpose: the machines declare actions
      // whose parameters only the provided implementation reads, and `{ drop: _drop, ...rest }`
      // leaves a property out.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Numbers and booleans interpolate into messages and subjects on purpose; objects and
      // `unknown` are still flagged (write `String(x)` to mean it).
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],

      // `let x;` assigned once later stays `let` when a closure reads it before that
      // assignment (a callback that may run while the assignment's own call is still going).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],

      // Turned off:
      // An `async` method without `await` is how a promise-returning interface (Bus, handlers,
      // fakes) is implemented synchronously; it also turns a throw into a rejection, which
      // callers rely on. Requiring an `await` would only add noise.
      '@typescript-eslint/require-await': 'off',
      // It flags every function taken out of an object whose type declares it in method syntax
      // (`const { submit } = client(...)`, `useScratchRepos()`), though none of them uses
      // `this`; the one real hazard (a class method passed as a callback) is rare here and
      // shows in tests at once.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    // Test files (not test/support nor testing/, the kit shipped as troupe/testing): vitest's asymmetric matchers
    // (`expect.any`, `expect.objectContaining`, ...) are typed `any`, and tests poke into JSON
    // and YAML they have just read (`Record<string, any>`), so `any` and the no-unsafe-* family
    // would flag only those.
    files: ['test/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
  {
    // Plain JavaScript (the bin shim, config files): no type information.
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: node },
  },
  {
    // The inspector's page runs in the browser, as an ES module.
    files: ['cli/inspector/page/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: {
        document: 'readonly',
        fetch: 'readonly',
        alert: 'readonly',
        CSS: 'readonly',
        EventSource: 'readonly',
        HTMLInputElement: 'readonly',
        requestAnimationFrame: 'readonly',
      },
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
