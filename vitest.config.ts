import { availableParallelism } from 'node:os';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * End-to-end files first. Vitest orders files by their last durations when it has them, and by
 * size otherwise (a fresh clone, as in CI): the end-to-end files start processes and take the
 * longest, and a small one among them (the examples, the Codex SDK on NATS) left for the end
 * would keep one worker busy while the other has nothing left to run.
 */
class EndToEndFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const endToEnd = (file: TestSpecification) => /[\\/]test[\\/]e2e[\\/]/.test(file.moduleId);
    return [...sorted.filter(endToEnd), ...sorted.filter((file) => !endToEnd(file))];
  }
}

export default defineConfig({
  resolve: {
    // XState's development build validates that every child logic is registered.
    conditions: ['development'],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // A HOME with empty profiles, so login shells never run the machine's own profile.
    globalSetup: ['test/setup/clean-home.ts'],
    // A guard against a hang, not a measure: an end-to-end test starts several node processes
    // one after another, and on a busy machine with two files running each may take seconds.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    execArgv: ['--conditions=development'],
    // Vitest's default is one worker fewer than the cores: one on a 2-core machine, where a test
    // file and the processes it starts keep about one core busy and leave the other idle. Two
    // files at a time there; a test waits for conditions, never for a time, so sharing the
    // cores makes it slower, not wrong.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    sequence: { sequencer: EndToEndFirst },
  },
});
