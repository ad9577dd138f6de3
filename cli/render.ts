import { stripVTControlCharacters } from 'node:util';
import type { Event } from '../protocol/index.js';
import { progressLine } from '../actors/jobs/progress.js';
import { asToolResult, resultText } from '../actors/tools/mcp/result-text.js';
import { shellJoin } from './shell-words.js';

/**
 * The readable transcript of `troupe exec` and `troupe demo`, written to a stream (stderr):
 * agent text, commands (quoted as a shell reads them) with their exit codes, MCP tool calls,
 * calls the policy or the sandbox refused and why, patches and diffs, retries and compaction,
 * and sub-agents as an indented tree (`[Ada · explorer]`), with a progress line while the model
 * works when that stream is a terminal.
 */
export class TranscriptRenderer {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #progress: NodeJS.Timeout | null = null;
  #progressStarted = 0;
  #frame = 0;
  #streamingText = false;
  /** Sub-agents by session id, so their lines can be told apart and indented by depth. */
  readonly #agents = new Map<string, { readonly name: string; readonly depth: number }>();
  #label = '';
  /** Between entered and exited_review_mode: the next child session is the reviewer. */
  #reviewing = false;
  /** Agent jobs whose progress has been shown. */
  readonly #jobs = new Set<string>();
  /** What was written while a question is open on the terminal, shown once it is answered. */
  #held: string[] | null = null;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = Boolean(out.isTTY) && process.env.TERM !== 'dumb';
  }

  render(event: Event): void {
    const msg = terminalSafe(event.msg);
    const agent = event.session_id !== null ? this.#agents.get(event.session_id) : undefined;
    this.#label = agent ? `${'  '.repeat(agent.depth)}[${agent.name}] ` : '';
    // Several agents stream at once: only the root's text is shown as it streams.
    if (agent && (msg.type === 'agent_message_delta' || msg.type === 'agent_reasoning_delta')) return;
    if (agent && msg.type === 'agent_message') {
      // The reviewer answers in JSON; its verdict is shown from exited_review_mode instead.
      if (agent.name !== 'reviewer') this.#line(msg.message);
      return;
    }
    switch (msg.type) {
      case 'agent_spawned': {
        const name = [msg.nickname ?? msg.agent_id.slice(0, 8), ...(msg.role ? [msg.role] : [])].join(' · ');
        this.#agents.set(msg.agent_id, { name, depth: msg.depth });
        this.#line(`spawned agent ${name}: ${msg.prompt}`);
        break;
      }
      case 'agent_status':
        if (msg.status !== 'pending_init' && msg.status !== 'running') {
          this.#line(dim(`agent ${this.#agents.get(msg.agent_id)?.name ?? msg.agent_id} ${msg.status}${msg.message ? `: ${msg.message}` : ''}`));
        }
        break;
      case 'agent_job_progress':
        // One bar, redrawn in place on a terminal; elsewhere a job's first and last states only.
        if (msg.status === 'running' && this.#tty) this.#startProgress(progressLine(msg));
        else if (msg.status !== 'running' || !this.#jobs.has(msg.job_id)) this.#line(progressLine(msg));
        this.#jobs.add(msg.job_id);
        break;
      case 'entered_review_mode':
        this.#reviewing = true;
        this.#line(bold(`review: ${msg.user_facing_hint ?? msg.target.type}`));
        break;
      case 'exited_review_mode': {
        this.#reviewing = false;
        const review = msg.review_output;
        if (!review) {
          this.#line('review ended without a result');
          break;
        }
        this.#line(`review verdict: ${review.overall_correctness} (${review.overall_explanation})`);
        for (const finding of review.findings) {
          const where = `${finding.code_location.absolute_file_path}:${finding.code_location.line_range.start}`;
          this.#line(`  [P${finding.priority}] ${finding.title} — ${where}`);
        }
        break;
      }
      case 'session_configured':
        // A sub-agent's session is announced by agent_spawned on its parent; a reviewer's by
        // entered_review_mode.
        if (msg.parent_session_id !== null) {
          if (this.#reviewing) this.#agents.set(msg.session_id, { name: 'reviewer', depth: msg.depth });
          break;
        }
        this.#line(`troupe session ${msg.session_id} · model ${msg.model} · ${msg.cwd}`);
        this.#line(`  approval ${msg.approval_policy} · sandbox ${typeof msg.sandbox_policy === 'string' ? msg.sandbox_policy : msg.sandbox_policy.mode}`);
        break;
      case 'task_started':
        this.#startProgress('thinking');
        break;
      case 'agent_message_delta':
        this.#stopProgress();
        this.#write(msg.delta);
        this.#streamingText = true;
        break;
      case 'agent_message':
        if (!this.#streamingText) this.#line(msg.message);
        else this.#endText();
        this.#startProgress('working');
        break;
      case 'agent_reasoning':
        this.#line(dim(`thinking: ${msg.text}`));
        break;
      case 'plan_update':
        this.#line('plan:');
        for (const step of msg.plan) this.#line(`  ${step.status === 'completed' ? '[x]' : step.status === 'in_progress' ? '[>]' : '[ ]'} ${step.step}`);
        break;
      case 'exec_command_begin':
        this.#line(bold(`$ ${shellJoin(msg.command)}`));
        this.#startProgress('running');
        break;
      case 'exec_command_end': {
        const output = msg.aggregated_output.trimEnd();
        if (output) this.#line(indent(lastLines(output, 20)));
        this.#line(msg.exit_code === 0 ? green(`✓ exit 0 · ${msg.duration_ms} ms`) : red(`✗ exit ${msg.exit_code} · ${msg.duration_ms} ms`));
        this.#startProgress('thinking');
        break;
      }
      case 'mcp_tool_call_begin':
        this.#line(bold(`mcp ${msg.server}.${msg.tool}(${clip(JSON.stringify(msg.arguments ?? {}), 200)})`));
        this.#startProgress('running');
        break;
      case 'mcp_tool_call_end': {
        const result = asToolResult(msg.result);
        const failed = msg.error !== undefined || result?.isError === true;
        const text = msg.error ?? (result ? resultText(result) : '').trimEnd();
        if (text) this.#line(indent(lastLines(text, 20)));
        this.#line(failed ? red(`✗ mcp call failed · ${msg.duration_ms} ms`) : green(`✓ mcp call · ${msg.duration_ms} ms`));
        this.#startProgress('thinking');
        break;
      }
      case 'tool_call_begin':
        this.#line(bold(`tool ${msg.tool}(${clip(JSON.stringify(msg.arguments ?? {}), 200)})`));
        this.#startProgress('running');
        break;
      case 'tool_call_progress':
        this.#line(dim(`  ${clip(typeof msg.progress === 'string' ? msg.progress : JSON.stringify(msg.progress), 200)}`));
        break;
      case 'tool_call_end':
        if (msg.output.trimEnd()) this.#line(indent(lastLines(msg.output.trimEnd(), 20)));
        this.#line(msg.success ? green(`✓ ${msg.tool} · ${msg.duration_ms} ms`) : red(`✗ ${msg.tool} failed · ${msg.duration_ms} ms`));
        this.#startProgress('thinking');
        break;
      case 'tool_approval_request':
        this.#line(yellow(`approval needed to call ${msg.tool}(${clip(JSON.stringify(msg.arguments ?? {}), 200)})${msg.reason ? ` (${msg.reason})` : ''}`));
        break;
      case 'tool_call_refused':
        this.#line(red(msg.by === 'sandbox' ? `✗ blocked by the sandbox: ${msg.reason}` : `✗ refused ${msg.tool}: ${msg.reason}`));
        break;
      case 'context_compacted':
        this.#line(dim('context compacted: the conversation so far was summarized to fit the model'));
        break;
      case 'patch_apply_begin':
        this.#line(bold(`patch: ${Object.keys(msg.changes).join(', ')}`));
        break;
      case 'patch_apply_end':
        this.#line(msg.success ? green(msg.stdout.trimEnd()) : red(msg.stderr.trimEnd() || 'patch failed'));
        break;
      case 'turn_diff':
        this.#line(colorDiff(msg.unified_diff.trimEnd()));
        break;
      case 'exec_approval_request':
        this.#line(yellow(`approval needed to run: ${shellJoin(msg.command)}${msg.reason ? ` (${msg.reason})` : ''}`));
        break;
      case 'apply_patch_approval_request':
        this.#line(yellow(`approval needed to change: ${Object.keys(msg.changes).join(', ')}${msg.reason ? ` (${msg.reason})` : ''}`));
        break;
      case 'stream_error':
        this.#line(yellow(`model stream failed (attempt ${msg.attempt}/${msg.max_attempts}): ${msg.message}`));
        break;
      case 'error':
        this.#line(red(`error (${msg.code}): ${msg.message}`));
        break;
      case 'warning':
        this.#line(yellow(`warning: ${msg.message}`));
        break;
      case 'turn_aborted':
        this.#line(red(`turn aborted (${msg.reason})`));
        break;
      case 'task_complete':
      case 'shutdown_complete':
        this.#stopProgress();
        break;
      default:
        break;
    }
  }

  close(): void {
    this.#stopProgress();
  }

  /**
   * Hold the transcript back while a question is open on the terminal, so other agents' output
   * neither splits the question nor overwrites it. The function returned shows what was held.
   */
  hold(): () => void {
    this.#stopProgress();
    this.#held ??= [];
    return () => {
      const held = this.#held ?? [];
      this.#held = null;
      for (const text of held) this.#out.write(text);
    };
  }

  #write(text: string): void {
    if (this.#held) this.#held.push(text);
    else this.#out.write(text);
  }

  #line(text: string): void {
    this.#stopProgress();
    this.#endText();
    const label = this.#label;
    this.#write(label ? `${text.replace(/^/gm, label)}\n` : `${text}\n`);
  }

  #endText(): void {
    if (!this.#streamingText) return;
    this.#streamingText = false;
    this.#write('\n');
  }

  #startProgress(label: string): void {
    if (!this.#tty || this.#held) return;
    this.#stopProgress();
    this.#progressStarted = Date.now();
    const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    this.#progress = setInterval(() => {
      const seconds = ((Date.now() - this.#progressStarted) / 1000).toFixed(0);
      this.#out.write(`\r${frames[this.#frame++ % frames.length]} ${label} ${seconds}s`);
    }, 100);
    this.#progress.unref();
  }

  #stopProgress(): void {
    if (!this.#progress) return;
    clearInterval(this.#progress);
    this.#progress = null;
    this.#out.write('\r\x1b[2K');
  }
}

/**
 * What the model, a command or an MCP server wrote is untrusted: escape sequences in it could
 * clear the screen, retitle the window, plant a link or move the cursor to hide or rewrite a
 * line (an approval prompt, say). The transcript shows every string of an event without
 * terminal control: escape sequences go whole, other control characters but newline and tab go.
 * A `command` is kept as it is: it is only ever shown through `shellJoin`, which writes such
 * characters as visible escapes, so the user sees what would run.
 */
export function terminalSafe<T>(value: T): T {
  if (typeof value === 'string') return stripControl(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => terminalSafe(item)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, key === 'command' && Array.isArray(item) ? (item as unknown) : terminalSafe(item as unknown)]),
    ) as T;
  }
  return value;
}

// C0 controls other than tab and newline, DEL, and the C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

function stripControl(text: string): string {
  return stripVTControlCharacters(text).replace(CONTROL, '');
}

const useColor = () => Boolean(process.stderr.isTTY) && !process.env.NO_COLOR;
const paint = (code: number) => (text: string) => (useColor() ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint(1);
const dim = paint(2);
const red = paint(31);
const green = paint(32);
const yellow = paint(33);

const indent = (text: string) => text.replace(/^/gm, '  ');

function lastLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.length <= n ? text : [`… ${lines.length - n} earlier lines`, ...lines.slice(-n)].join('\n');
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function colorDiff(diff: string): string {
  return diff
    .split('\n')
    .map((line) => (line.startsWith('+') && !line.startsWith('+++') ? green(line) : line.startsWith('-') && !line.startsWith('---') ? red(line) : line))
    .join('\n');
}
