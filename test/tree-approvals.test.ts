import { describe, expect, it } from 'vitest';
import { TreeApprovals } from '../actors/agents/tree-approvals.js';
import { InProcessBroker } from '../lib/bus/in-process.js';
import { waitFor } from './support/wait.js';

describe('TreeApprovals', () => {
  it('shares grants across the tree and reports each one heard from another session once', async () => {
    const broker = new InProcessBroker();
    const heard: string[] = [];
    const root = new TreeApprovals(broker.connect(), 'default', 'root-1', ['exec:["ls"]']);
    const child = new TreeApprovals(broker.connect(), 'default', 'root-1', root.snapshot(), (key) => heard.push(key));
    const otherTree = new TreeApprovals(broker.connect(), 'default', 'root-2');
    for (const member of [root, child, otherTree]) member.start();
    try {
      expect(child.has('exec:["ls"]')).toBe(true);
      root.grant('exec:["make"]');
      child.grant('exec:["cat"]');
      await waitFor(() => child.has('exec:["make"]') && root.has('exec:["cat"]'), 'the grants to spread');
      root.grant('exec:["make"]');
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Its own grant is not "heard"; a grant it already had is not reported twice.
      expect(heard).toEqual(['exec:["make"]']);
      expect(otherTree.has('exec:["make"]')).toBe(false);
    } finally {
      await broker.close();
    }
  });
});
