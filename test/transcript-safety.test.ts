import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TranscriptRenderer } from '../cli/render.js';
import { shellJoin } from '../cli/shell-words.js';
import type { EventMsg } from '../protocol/index.js';
import { describeApprovalRequest } from '../protocol/index.js';

// Escape sequences a hostile model, command or MCP server could print to take over a terminal.
const CLEAR_SCREEN = '\x1b[2J\x1b[H';
const SET_TITLE = '\x1b]0;owned\x07';
const HIDDEN_LINK = '\x1b]8;;https://attacker.example\x1b\\click\x1b]8;;\x1b\\';
const ERASE_LINE = '\x1b[2K\r';
const C1_CSI = '\u009b31m';
// eslint-disable-next-line no-control-regex
const ANY_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

function transcript(msgs: readonly EventMsg[]): string {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const renderer = new TranscriptRenderer(out as unknown as NodeJS.WriteStream);
  msgs.forEach((msg, i) => renderer.render({ id: `e${i}`, session_id: 's', seq: i + 1, msg }));
  renderer.close();
  return text;
}

describe('the transcript shows untrusted text without terminal control', () => {
  it('strips escape sequences and control characters from model text, commands and their output, and keeps the words', () => {
    const text = transcript([
      { type: 'agent_message_delta', delta: `hello ${CLEAR_SCREEN}` },
      { type: 'agent_message_delta', delta: `world${SET_TITLE}` },
      { type: 'agent_message', message: `hello world` },
      { type: 'agent_reasoning', text: `thinking ${HIDDEN_LINK}` },
      { type: 'exec_command_begin', call_id: 'c1', turn_id: 't', command: ['bash', '-lc', `echo hi${ERASE_LINE}`], cwd: '/w' },
      {
        type: 'exec_command_end',
        call_id: 'c1',
        turn_id: 't',
        exit_code: 0,
        stdout: `visible${ERASE_LINE}fake: all tests passed${C1_CSI}\n`,
        stderr: '',
        aggregated_output: `visible${ERASE_LINE}fake: all tests passed${C1_CSI}\n`,
        duration_ms: 3,
      },
      { type: 'warning', message: `careful\x07\x08${SET_TITLE}` },
    ]);
    expect(text).not.toMatch(ANY_CONTROL);
    expect(text).toContain('hello world');
    expect(text).toContain('thinking click');
    expect(text).toContain('visiblefake: all tests passed\n');
    // The command is shown quoted so that its control characters are visible, not acted on.
    expect(text).toContain("$ bash -lc $'echo hi\\e[2K\\r'");
    expect(text).toContain('warning: careful');
  });

  it('an approval prompt shows a command with control characters as visible escapes', () => {
    const what = describeApprovalRequest(
      { type: 'exec_approval_request', call_id: 'c', turn_id: 't', command: ['rm', `-rf${ERASE_LINE}ls`, '/'], cwd: '/w' },
      shellJoin,
    );
    expect(what).not.toMatch(ANY_CONTROL);
    expect(what).toBe("run `rm $'-rf\\e[2K\\rls' /` in /w");
  });
});
