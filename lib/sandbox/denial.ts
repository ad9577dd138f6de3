/**
 * Guessing whether a failed command failed because of the sandbox. A confined program only
 * sees ordinary errors (a read-only file system, a refused connection), so we look for those
 * in its output. False positives cost one approval question; false negatives leave the model
 * to ask for escalation itself.
 */
export interface FinishedCommand {
  readonly exitCode: number;
  readonly output: string;
  readonly timedOut?: boolean | undefined;
  readonly aborted?: boolean | undefined;
}

const FILESYSTEM = /permission denied|operation not permitted|read-only file system|\bEACCES\b|\bEPERM\b|\bEROFS\b/i;
/** Without a network namespace's routes, connections fail in these ways. */
const NETWORK =
  /network is unreachable|\bENETUNREACH\b|connection refused|\bECONNREFUSED\b|couldn't connect to server|could not resolve host|temporary failure in name resolution|name or service not known|\bEAI_AGAIN\b|getaddrinfo/i;
/** bubblewrap itself failed to set the sandbox up. */
const BWRAP = /^bwrap: (?!execvp )/m;

/** Exit codes of "command not found" and "not executable": the program, not the sandbox. */
const NOT_A_DENIAL = new Set([0, 124, 126, 127]);

export function isLikelySandboxDenial(result: FinishedCommand, spec: { readonly networkAccess: boolean }): boolean {
  if (result.timedOut === true || result.aborted === true) return false;
  if (NOT_A_DENIAL.has(result.exitCode)) return false;
  if (FILESYSTEM.test(result.output) || BWRAP.test(result.output)) return true;
  return !spec.networkAccess && NETWORK.test(result.output);
}

/**
 * Inside bubblewrap a missing program is reported by bwrap itself (`bwrap: execvp X: No such
 * file or directory`, exit 1). The program's name when `stderr` is that report, so the failure
 * can be given the exit code it has outside and not be taken for a denial.
 */
export function missingProgramInSandbox(exitCode: number, stderr: string): string | undefined {
  if (exitCode !== 1) return undefined;
  return /^bwrap: execvp (.+): No such file or directory\s*$/m.exec(stderr)?.[1];
}
