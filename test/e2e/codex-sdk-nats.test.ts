import { describe, expect, it } from 'vitest';
import { inputTexts } from '../../testing/requests.js';
import { useCodexOnTroupe } from '../support/codex-sdk.js';
import { NatsCluster } from '../support/nats-cluster.js';

// The Codex SDK driving troupe whose sessions run on a NATS worker: the SDK cannot pass --nats,
// so the broker comes from the environment it gives troupe (TROUPE_NATS_URL, TROUPE_NAMESPACE).

const cluster = new NatsCluster({ name: 'codex-sdk-nats' });
const codexOnTroupe = useCodexOnTroupe();

describe('the Codex SDK driving troupe on NATS', () => {
  it('runs a turn with a command on a worker and resumes the thread there', async () => {
    await cluster.startWorker('w1', 2);
    cluster.model.enqueue(
      { kind: 'response', items: [{ type: 'function_call', name: 'shell', call_id: 'c1', arguments: { command: ['echo', 'on the worker'] } }] },
      { kind: 'response', items: [{ type: 'message', text: 'Ran it.' }], usage: { input_tokens: 30, cached_input_tokens: 0, output_tokens: 4 } },
      { kind: 'response', items: [{ type: 'message', text: 'Still here.' }] },
    );
    const codex = codexOnTroupe({ env: { TROUPE_HOME: cluster.dir, TROUPE_NATS_URL: cluster.nats.url, TROUPE_NAMESPACE: cluster.namespace } });
    const options = { workingDirectory: cluster.dir, skipGitRepoCheck: true };
    const thread = codex.startThread(options);
    const turn = await thread.run('run something');
    expect(turn.items.map((item) => item.type)).toEqual(['command_execution', 'agent_message']);
    expect(turn.items[0]).toMatchObject({ command: "echo 'on the worker'", aggregated_output: 'on the worker\n', exit_code: 0, status: 'completed' });
    expect(turn.usage).toMatchObject({ output_tokens: expect.any(Number) });

    const again = await codex.resumeThread(thread.id!, options).run('and now?');
    expect(again.finalResponse).toBe('Still here.');
    expect(inputTexts(cluster.model.requests[2]!).some((text) => text.includes('run something'))).toBe(true);
  });
});
