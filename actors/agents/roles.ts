/**
 * Agent roles: the kinds of sub-agent `spawn_agent` can start (`agent_type`). A role gives its
 * agents instructions of their own and may choose their model, an allow-list of tools, and a
 * sandbox or approval policy, which may narrow the parent's and never widen it.
 */
import path from 'node:path';
import type { AgentRole, AskForApproval, SandboxMode, SandboxPolicyObject, SessionConfig } from '../../protocol/index.js';
import { normalizeSandboxPolicy, type SessionSettings, type TurnContext } from '../../machines/turn-context.js';
import { TroupeError } from '../../protocol/index.js';
import { isWithin, realPathOf } from '../../lib/sandbox/index.js';

/** The roles every session has; `agent_roles` in a config may replace them by name. */
export const BUILT_IN_ROLES: Readonly<Record<string, AgentRole>> = Object.freeze({
  default: {
    description: 'A general agent with the same tools and policies as you.',
    instructions: 'You are a sub-agent working on one part of a larger task. Do that part, then answer with what you found or changed.',
  },
  explorer: {
    description: 'Reads and searches the code to answer a question; changes nothing.',
    instructions:
      'You are an explorer: answer the question you were given by reading and searching the code. Change no file. Answer with the facts and the files and lines they come from.',
    sandbox_policy: 'read-only',
  },
  worker: {
    description: 'Makes a change it is given, in the files it is told it owns.',
    instructions:
      'You are a worker: make the change you were given. Edit only the files your task says are yours; other agents may be editing the rest. Say what you changed when you are done.',
  },
});

/** The roles of a session: the built-ins, then TROUPE_HOME's, then its config's. */
export function sessionRoles(home: SessionConfig['agent_roles'], config: SessionConfig['agent_roles']): Record<string, AgentRole> {
  return { ...BUILT_IN_ROLES, ...home, ...config };
}

/** The spawn_agent description: what it does, and the roles to choose from. */
export function describeRoles(roles: Readonly<Record<string, AgentRole>>): string {
  return Object.entries(roles)
    .map(([name, role]) => `- ${name}: ${role.description}`)
    .join('\n');
}

/** Raised when a role cannot be used; the message is the tool's output. */
export class RoleError extends TroupeError {
  override readonly name = 'RoleError';
  override readonly code = 'bad_request';
}

/** How a role changes the config of a child started by `turn`. */
export function roleConfig(
  turn: TurnContext,
  name: string,
): Pick<SessionConfig, 'agent_role' | 'developer_instructions' | 'model' | 'sandbox_policy' | 'approval_policy'> {
  const roles = turn.agent_roles ?? BUILT_IN_ROLES;
  const role = roles[name];
  if (!role) throw new RoleError(`unknown agent_type "${name}"; the roles are: ${Object.keys(roles).join(', ')}`);
  return {
    agent_role: name,
    developer_instructions: role.instructions,
    ...(role.model !== undefined ? { model: role.model } : {}),
    ...(role.sandbox_policy !== undefined
      ? { sandbox_policy: narrowerSandbox(turn.sandbox_policy, normalizeSandboxPolicy(role.sandbox_policy), { parent: turn.cwd, wanted: turn.cwd }) }
      : {}),
    ...(role.approval_policy !== undefined ? { approval_policy: narrowerApproval(turn.approval_policy, role.approval_policy) } : {}),
  };
}

const MODE_RANK: Record<SandboxMode, number> = { 'read-only': 0, 'workspace-write': 1, 'danger-full-access': 2 };

/**
 * The sandbox a child gets when its role asks for `wanted` and its parent has `parent`: the
 * role's where it allows no more than the parent's; the parent's where it would allow more.
 * Within the same mode each part is the narrower of the two: network only when both allow it,
 * writable roots the parent also has, the lower process and file-size limits.
 */
export function narrowerSandbox(
  parent: SandboxPolicyObject,
  wanted: SandboxPolicyObject,
  cwds: { readonly parent: string; readonly wanted: string },
): SandboxPolicyObject {
  const parentRank = MODE_RANK[parent.mode];
  const wantedRank = MODE_RANK[wanted.mode];
  if (wantedRank > parentRank) return parent;
  const minimum = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  // Compared, and kept, as the real directories they name (as the sandbox binds them): by
  // their text, `<root>/../elsewhere` or a link inside a parent's root looked like a part of it.
  const real = (root: string, cwd: string): string => realPathOf(path.resolve(cwd, root));
  const parentRoots = (parent.writable_roots ?? []).map((root) => real(root, cwds.parent));
  const withinParent = (root: string): boolean => parent.mode === 'danger-full-access' || parentRoots.some((p) => isWithin(p, root));
  const maxProcesses = minimum(parent.max_processes, wanted.max_processes);
  const maxFileSize = minimum(parent.max_file_size_bytes, wanted.max_file_size_bytes);
  return {
    mode: wanted.mode,
    writable_roots: (wanted.writable_roots ?? []).map((root) => real(root, cwds.wanted)).filter(withinParent),
    network_access: (parent.mode === 'danger-full-access' || parent.network_access === true) && wanted.network_access === true,
    ...(maxProcesses !== undefined ? { max_processes: maxProcesses } : {}),
    ...(maxFileSize !== undefined ? { max_file_size_bytes: maxFileSize } : {}),
  };
}

/** How often a policy has a person asked: the higher, the narrower. */
const APPROVAL_RANK: Record<AskForApproval, number> = { never: 0, 'on-failure': 1, 'on-request': 2, untrusted: 3 };

/** The role's approval policy when it asks a person at least as often as the parent's; otherwise the parent's. */
export function narrowerApproval(parent: AskForApproval, wanted: AskForApproval): AskForApproval {
  return APPROVAL_RANK[wanted] >= APPROVAL_RANK[parent] ? wanted : parent;
}

/** False when the session's role opts out of the project's AGENTS.md files. */
export function readsProjectDocs(settings: Pick<SessionSettings, 'agent_role' | 'agent_roles'>): boolean {
  return settings.agent_role === undefined || settings.agent_roles?.[settings.agent_role]?.project_docs !== false;
}

/** The tools a session may be offered when its role has an allow-list; undefined: no restriction. */
export function roleTools(settings: Pick<SessionSettings, 'agent_role' | 'agent_roles'>): ReadonlySet<string> | undefined {
  const tools = settings.agent_role !== undefined ? settings.agent_roles?.[settings.agent_role]?.tools : undefined;
  return tools ? new Set(tools) : undefined;
}
