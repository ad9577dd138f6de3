import type { ResponseItem } from '../../protocol/index.js';
import type { SessionSettings } from '../../machines/turn-context.js';

/** The parts of the settings the model is told about; a change of any of them is announced again. */
export interface EnvironmentContext {
  readonly cwd: string;
  readonly approval_policy: string;
  readonly sandbox_mode: string;
  readonly network_access: boolean;
  readonly writable_roots: readonly string[];
  readonly shell: string;
}

export function environmentContext(settings: SessionSettings): EnvironmentContext {
  return {
    cwd: settings.cwd,
    approval_policy: settings.approval_policy,
    sandbox_mode: settings.sandbox_policy.mode,
    network_access: settings.sandbox_policy.network_access ?? false,
    writable_roots: settings.sandbox_policy.writable_roots ?? [],
    shell: process.env.SHELL ?? '/bin/sh',
  };
}

export function sameEnvironment(a: EnvironmentContext | null, b: EnvironmentContext): boolean {
  return a !== null && JSON.stringify(a) === JSON.stringify(b);
}

/** The environment as a user-role message the model reads at the start and after every change. */
export function environmentMessage(env: EnvironmentContext): ResponseItem {
  const lines = [
    '<environment_context>',
    `  <cwd>${env.cwd}</cwd>`,
    `  <approval_policy>${env.approval_policy}</approval_policy>`,
    `  <sandbox_mode>${env.sandbox_mode}</sandbox_mode>`,
    `  <network_access>${env.network_access ? 'enabled' : 'restricted'}</network_access>`,
    ...(env.writable_roots.length > 0 ? ['  <writable_roots>', ...env.writable_roots.map((r) => `    <root>${r}</root>`), '  </writable_roots>'] : []),
    `  <shell>${env.shell}</shell>`,
    '</environment_context>',
  ];
  return { type: 'message', role: 'user', content: [{ type: 'input_text', text: lines.join('\n') }] };
}

export function developerMessage(text: string): ResponseItem {
  return { type: 'message', role: 'developer', content: [{ type: 'input_text', text }] };
}
