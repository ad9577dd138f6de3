import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // XState's development build validates that every child logic is registered.
    conditions: ['development'],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // A HOME with empty profiles, so login shells never run the machine's own profile.
    globalSetup: ['test/setup/clean-home.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    execArgv: ['--conditions=development'],
  },
});
