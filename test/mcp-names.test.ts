import { describe, expect, it } from 'vitest';
import { assignToolNames, MAX_TOOL_NAME_LENGTH } from '../actors/tools/mcp/index.js';

const names = (refs: { server: string; tool: string }[], taken?: Set<string>): string[] => [...assignToolNames(refs, taken).keys()];

describe('MCP tool names', () => {
  it('joins server and tool with __ and sanitizes both to the provider charset', () => {
    expect(names([{ server: 'git hub', tool: 'search.issues/v2' }])).toEqual(['git_hub__search_issues_v2']);
    expect(names([{ server: 'fs', tool: 'read-file' }])).toEqual(['fs__read-file']);
  });

  it('caps long names at 64 characters with a stable hash suffix', () => {
    const ref = { server: 'server', tool: 'x'.repeat(100) };
    const [name] = names([ref]);
    expect(name).toHaveLength(MAX_TOOL_NAME_LENGTH);
    expect(name).toMatch(/^server__x+_[0-9a-f]{8}$/);
    expect(names([ref])).toEqual([name]);
  });

  it('resolves collisions the same way whatever the order, and avoids taken names', () => {
    const a = { server: 's', tool: 'a.b' };
    const b = { server: 's', tool: 'a_b' };
    const forward = assignToolNames([a, b]);
    const backward = assignToolNames([b, a]);
    expect([...forward.entries()].sort()).toEqual([...backward.entries()].sort());
    expect(forward.get('s__a_b')).toEqual(a);
    expect([...forward.keys()].find((n) => n !== 's__a_b')).toMatch(/^s__a_b_[0-9a-f]{8}$/);
    expect(names([{ server: 'x', tool: 'y' }], new Set(['x__y']))[0]).toMatch(/^x__y_[0-9a-f]{8}$/);
  });
});
