import { errorEvent, TroupeError, type EventMsg, type MessageItem, type OpOf, type Submission } from '../../protocol/index.js';
import type { SessionEvent } from '../../machines/session.js';
import type { SessionMcp } from './session-mcp.js';
import { userMessage, UserInputError } from './user-input.js';

/** Where a translated op goes. */
export interface OpTarget {
  /** The session's statechart. */
  send(event: SessionEvent): void;
  /** The session's event stream, for ops refused here. */
  emit(id: string | null, msg: EventMsg): void;
  readonly mcp: SessionMcp;
  /** Store and start an agent job (regular sessions only; it runs in the background). */
  readonly runJob?: ((id: string, op: OpOf<'run_agent_job'>) => void) | undefined;
}

/**
 * Apply one op of a session: most become an event of the SessionMachine, which decides what
 * they do in its current state; user input is first turned into the message the model is sent,
 * and an elicitation answer goes straight to the MCP server that asked. Turn input waits until
 * the session's MCP servers have started, so the first request offers their tools.
 */
export async function applyOp(submission: Submission, target: OpTarget): Promise<void> {
  const id = submission.id;
  const op = submission.op;
  const refuse = (message: string) => target.emit(id, errorEvent(new TroupeError(message, { code: 'bad_request' })));
  switch (op.type) {
    case 'user_turn':
    case 'user_input': {
      await target.mcp.ready;
      let message: MessageItem;
      try {
        message = await userMessage(op.items);
      } catch (error) {
        if (!(error instanceof UserInputError)) throw error;
        return refuse(error.message);
      }
      const { type: _type, items: _items, ...rest } = op;
      const overrides = op.type === 'user_turn' ? rest : {};
      return target.send({
        type: 'TURN_INPUT',
        submissionId: id,
        items: [message],
        overrides,
        final_output_json_schema: op.type === 'user_turn' ? op.final_output_json_schema : undefined,
      });
    }
    case 'override_turn_context': {
      const { type: _type, ...overrides } = op;
      return target.send({ type: 'OVERRIDE', submissionId: id, overrides });
    }
    case 'interrupt':
      return target.send({ type: 'INTERRUPT', submissionId: id });
    case 'exec_approval':
    case 'patch_approval':
    case 'tool_approval':
      return target.send({ type: 'APPROVAL', submissionId: id, callId: op.id, decision: op.decision });
    case 'client_tool_output':
      return target.send({ type: 'CLIENT_TOOL_OUTPUT', submissionId: id, callId: op.call_id, output: { text: op.output, success: op.success } });
    case 'shutdown':
      return target.send({ type: 'SHUTDOWN', submissionId: id });
    case 'resolve_elicitation':
      await target.mcp.ready;
      try {
        target.mcp.resolveElicitation(op);
      } catch (error) {
        refuse((error as Error).message);
      }
      return;
    case 'review':
      return target.send({ type: 'REVIEW', submissionId: id, target: op.review_request.target, hint: op.review_request.user_facing_hint });
    case 'compact':
      return target.send({ type: 'COMPACT', submissionId: id });
    case 'undo':
      return target.send({ type: 'UNDO', submissionId: id });
    case 'thread_rollback':
      return target.send({ type: 'ROLLBACK', submissionId: id, numTurns: op.num_turns });
    case 'run_user_shell_command':
      return target.send({ type: 'USER_SHELL', submissionId: id, command: op.command });
    case 'run_agent_job':
      return target.runJob ? target.runJob(id, op) : refuse('this session cannot run agent jobs');
    default:
      return refuse(`op ${op.type} does not address an existing session`);
  }
}
