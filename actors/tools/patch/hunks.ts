/** Hunks from one text to another (three lines of context, no file headers). */
export type Hunks = (before: string, after: string) => string;

let loading: Promise<Hunks> | undefined;

/**
 * The hunks function, with the `diff` package it uses loaded at the first call: a run that
 * changes no file never loads it.
 */
export function loadHunks(): Promise<Hunks> {
  loading ??= import('diff').then(
    ({ createTwoFilesPatch, OMIT_HEADERS }) =>
      (before, after) =>
        createTwoFilesPatch('', '', before, after, undefined, undefined, { context: 3, headerOptions: OMIT_HEADERS }),
  );
  return loading;
}
