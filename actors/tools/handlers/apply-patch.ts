/**
 * The `apply_patch` tool: the model's way to create, edit, move and delete files. The patch
 * is parsed and computed during planning, so a malformed patch or a hunk that does not match
 * goes straight back to the model, and an approval request shows exactly what would change.
 */
import path from 'node:path';
import { ApplyPatchArgs, type FileChange } from '../../../protocol/index.js';
import { rulesHome } from '../../../lib/approval/index.js';
import { checkWritable, escapesCwd, realPathOf } from '../../../lib/sandbox/index.js';
import { planApproval, type ApprovalNeed } from '../orchestrator.js';
import { snapshotDirectories } from '../shell-snapshot.js';
import { PatchApplyError, preparePatch, previewPatch, type PatchResult } from '../patch/apply.js';
import { parsePatch, PatchParseError, type PatchOperation } from '../patch/parser.js';
import { defineTool, type ApprovalMemory, type RunPlan, type ToolContext, type ToolOutput, type ToolPlan } from '../tool.js';

const DESCRIPTION = `Create, edit, rename or delete files by sending a patch as \`input\`.
The patch starts with "*** Begin Patch" and ends with "*** End Patch". In between, one section per file:
- "*** Add File: <path>" followed by the new file's lines, each prefixed with "+".
- "*** Delete File: <path>" alone.
- "*** Update File: <path>", optionally followed by "*** Move to: <new path>", then one or more hunks.
  A hunk starts with "@@", optionally followed by a line of the file (for example a function or class
  header) that occurs before the change and tells where to look. Then come the hunk's lines: " " for an
  unchanged line, "-" for a removed one, "+" for an added one. Give about three unchanged lines before
  and after each change so the place is unambiguous. Put "*** End of File" after a hunk that must
  match the end of the file.
Paths are relative to the working directory (or absolute). Never use line numbers.
Example:
*** Begin Patch
*** Update File: src/greet.py
@@ def greet(name):
-    print("Hi", name)
+    print("Hello,", name)
*** End Patch`;

export const applyPatchTool = defineTool<ApplyPatchArgs>({
  name: 'apply_patch',
  description: DESCRIPTION,
  args: ApplyPatchArgs,
  plan: planApplyPatch,
  run: runApplyPatch,
});

/**
 * The patch is written by troupe's own process, so the sandbox cannot hold it: its paths are
 * checked against the writable roots here, and a patch that leaves them asks (or is refused).
 */
export async function planApplyPatch(args: ApplyPatchArgs, ctx: ToolContext, approvals: ApprovalMemory): Promise<ToolPlan> {
  const mode = ctx.turn.sandbox_policy.mode;
  return planApproval(await approvalNeed(args, ctx), approvals, mode !== 'danger-full-access');
}

async function approvalNeed(args: ApplyPatchArgs, ctx: ToolContext): Promise<ApprovalNeed> {
  const turn = ctx.turn;
  const mode = turn.sandbox_policy.mode;
  let operations: PatchOperation[];
  try {
    operations = parsePatch(args.input);
  } catch (error) {
    return { kind: 'reject', reason: describeFailure(error) };
  }
  if (mode !== 'danger-full-access') {
    const escaping = operations.flatMap(namedPaths).find((p) => escapesCwd(turn.cwd, p));
    if (escaping !== undefined) {
      return {
        kind: 'reject',
        reason: `apply_patch refused: the path ${escaping} uses '..' to leave the working directory ${turn.cwd}, which the ${mode} sandbox does not allow. Use a path inside the working directory.`,
      };
    }
  }
  let preview: PatchResult;
  try {
    preview = await previewPatch(args.input, turn.cwd);
  } catch (error) {
    return { kind: 'reject', reason: describeFailure(error) };
  }

  const changed = changedPaths(preview.changes);
  const ask = (reason: string): ApprovalNeed => ({
    kind: 'ask',
    request: { type: 'patch', changes: preview.changes, reason },
    // The files written, symlinks resolved: an approval for the session covers those files, not
    // whatever a link the model can change points to later.
    approvalKey: `patch:${changed.map((p) => realPathOf(p)).join('\n')}`,
  });

  if (turn.approval_policy === 'untrusted') return ask('the approval policy asks before every patch');
  if (mode === 'danger-full-access') return { kind: 'none' };
  const home = rulesHome(ctx);
  const readOnly = snapshotDirectories();
  const blocked = changed.map((p) => checkWritable(turn, p, { home, readOnly })).find((v) => !v.ok);
  if (blocked === undefined || blocked.ok) return { kind: 'none' };
  if (turn.approval_policy === 'never') {
    return {
      kind: 'reject',
      reason: `apply_patch refused: ${blocked.why}, and the approval policy "never" forbids asking the user. Only change files inside the writable roots.`,
    };
  }
  return ask(blocked.why);
}

export async function runApplyPatch(args: ApplyPatchArgs, ctx: ToolContext, plan: RunPlan): Promise<ToolOutput> {
  const cwd = ctx.turn.cwd;
  if (ctx.signal.aborted) return { text: 'apply_patch was interrupted before it changed anything', success: false };
  const begin = (changes: Record<string, FileChange>): void =>
    ctx.emit({ type: 'patch_apply_begin', call_id: ctx.callId, auto_approved: !plan.userApproved, changes });
  const fail = (error: unknown): ToolOutput => {
    const message = describeFailure(error);
    ctx.emit({ type: 'patch_apply_end', call_id: ctx.callId, success: false, stdout: '', stderr: message });
    return { text: message, success: false };
  };

  // Planned before an approval wait, or beside other calls of the same response: a link among
  // the patch's paths may point elsewhere now. The patch runs only if, as the files are now, it
  // needs no approval, or needs exactly the one given.
  const now = await approvalNeed(args, ctx);
  if (now.kind === 'reject' || (now.kind === 'ask' && now.approvalKey !== plan.approvedKey)) {
    const message =
      now.kind === 'reject'
        ? now.reason
        : `apply_patch refused: the files it would write are not the ones ${plan.userApproved ? 'the user approved' : 'it was planned to write'} (a link among its paths points elsewhere now), and writing them needs approval; nothing was written`;
    begin({});
    ctx.emit({ type: 'patch_apply_end', call_id: ctx.callId, success: false, stdout: '', stderr: message });
    return { text: message, success: false };
  }
  let prepared: Awaited<ReturnType<typeof preparePatch>>;
  try {
    prepared = await preparePatch(args.input, cwd);
  } catch (error) {
    // The files may have changed since planning; the client still gets a begin/end pair.
    begin({});
    return fail(error);
  }
  begin(prepared.changes);
  let result: PatchResult;
  try {
    result = await prepared.commit({ signal: ctx.signal });
  } catch (error) {
    return fail(error);
  }
  const summary = summarize(result, cwd);
  ctx.emit({ type: 'patch_apply_end', call_id: ctx.callId, success: true, stdout: summary, stderr: '' });
  await ctx.trackChanges?.(result.changes, result.before);
  return { text: summary, success: true };
}

/** Every path the patch names, as written (move destinations included). */
function namedPaths(op: PatchOperation): string[] {
  return op.type === 'update' && op.moveTo !== undefined ? [op.path, op.moveTo] : [op.path];
}

/** Absolute paths the patch writes or deletes, sorted. */
function changedPaths(changes: Record<string, FileChange>): string[] {
  const paths = new Set<string>();
  for (const [file, change] of Object.entries(changes)) {
    paths.add(file);
    if (change.type === 'update' && change.move_path !== undefined) paths.add(change.move_path);
  }
  return [...paths].sort();
}

function summarize(result: PatchResult, cwd: string): string {
  const show = (file: string): string => {
    const rel = path.relative(cwd, file);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
  };
  const lines: string[] = [];
  for (const [file, change] of Object.entries(result.changes)) {
    if (change.type === 'add') lines.push(`A ${show(file)}`);
    else if (change.type === 'delete') lines.push(`D ${show(file)}`);
    else if (change.move_path !== undefined) lines.push(`M ${show(file)} -> ${show(change.move_path)}`);
    else lines.push(`M ${show(file)}`);
  }
  return lines.length === 0 ? 'Patch applied; no file changed.' : `Patch applied. Files changed:\n${lines.join('\n')}`;
}

function describeFailure(error: unknown): string {
  if (error instanceof PatchParseError) return `apply_patch could not parse the patch: ${error.message}`;
  if (error instanceof PatchApplyError) return `apply_patch failed (no file was changed): ${error.message}`;
  return `apply_patch failed: ${error instanceof Error ? error.message : String(error)}`;
}
