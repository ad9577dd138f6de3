import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  BusClosedError,
  InProcessBroker,
  InProcessBus,
  InvalidSubjectError,
  InvalidSubjectTokenError,
  assertPublishSubject,
  assertSubscribeSubject,
  assertToken,
  createInProcessBus,
  inbox,
  parseEventSubject,
  subjects,
  type Bus,
} from '../lib/bus/index.js';
import { SubjectTree } from '../lib/bus/subject-tree.js';
import type { Logger } from '../lib/log.js';
import type { BusMessage } from '../protocol/index.js';
import { describeBusContract } from './support/bus-contract.js';
import { waitFor } from './support/wait.js';

/** A real pino logger whose lines are kept in memory, so tests can read what was logged. */
function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines };
}

const placed = (sessionId: string): BusMessage => ({
  kind: 'placed',
  session_id: sessionId,
  worker_id: 'local',
  rollout_path: '/tmp/r.jsonl',
});

describeBusContract('in-process', async () => {
  const broker = new InProcessBroker({ logger: capturingLogger().logger });
  return {
    connect: async () => broker.connect(),
    publishRaw: async (bus: Bus, subject: string, payload: string) => {
      if (!(bus instanceof InProcessBus)) throw new TypeError('not an in-process connection');
      await bus.publishRaw(subject, payload);
    },
    teardown: () => broker.close(),
  };
});

describe('subjects', () => {
  it('builds the subjects of a namespace', () => {
    const s = subjects('prod');
    expect(s.namespace).toBe('prod');
    expect(s.op('s1')).toBe('troupe.prod.op.s1');
    expect(s.event('r1', 's2')).toBe('troupe.prod.evt.r1.s2');
    expect(s.tree('r1')).toBe('troupe.prod.evt.r1.>');
    expect(s.allEvents()).toBe('troupe.prod.evt.>');
    expect(s.place()).toBe('troupe.prod.place');
    expect(s.control('list')).toBe('troupe.prod.ctl.list');
    expect(subjects().op('x')).toBe('troupe.default.op.x');
  });

  it('rejects ids and namespaces that are not one clean token, naming them', () => {
    for (const bad of ['', 'a.b', 'a*', '>', 'a b', 'tab\there']) {
      expect(() => subjects().op(bad)).toThrow(InvalidSubjectTokenError);
    }
    expect(() => subjects('a.b')).toThrow(/invalid namespace "a\.b"/);
    expect(() => subjects().event('r.1', 's')).toThrow(/invalid root id "r\.1"/);
    expect(() => subjects().event('r', '')).toThrow(/invalid session id ""/);
    expect(assertToken('0196-abc_DEF', 'session id')).toBe('0196-abc_DEF');
  });

  it('parses an event subject back into its ids', () => {
    const s = subjects('ns');
    expect(parseEventSubject(s.event('root', 'child'))).toEqual({ root_id: 'root', session_id: 'child' });
    expect(parseEventSubject(s.event('root', 'child'), 'ns')).toEqual({ root_id: 'root', session_id: 'child' });
    expect(() => parseEventSubject(s.event('root', 'child'), 'other')).toThrow(InvalidSubjectError);
    expect(() => parseEventSubject(s.op('x'))).toThrow(InvalidSubjectError);
    expect(() => parseEventSubject(s.tree('root'))).toThrow(InvalidSubjectTokenError);
    expect(() => parseEventSubject('troupe.ns.evt.a.b.c')).toThrow(InvalidSubjectError);
  });

  it('makes distinct inbox subjects that are valid to publish on', () => {
    const a = inbox();
    const b = inbox();
    expect(a).not.toBe(b);
    expect(a.startsWith('_INBOX.')).toBe(true);
    expect(() => assertPublishSubject(a)).not.toThrow();
  });

  it('matches filters with NATS semantics', () => {
    const matches = (filter: string, subject: string) => {
      const tree = new SubjectTree<string>();
      tree.add(filter, 'x');
      return tree.match(subject).length === 1;
    };
    expect(matches('a.b', 'a.b')).toBe(true);
    expect(matches('a.b', 'a.b.c')).toBe(false);
    expect(matches('a.*', 'a.b')).toBe(true);
    expect(matches('a.*', 'a')).toBe(false);
    expect(matches('a.*', 'a.b.c')).toBe(false);
    expect(matches('*.b', 'a.b')).toBe(true);
    expect(matches('a.>', 'a')).toBe(false);
    expect(matches('a.>', 'a.b.c')).toBe(true);
    expect(matches('>', 'a')).toBe(true);
    expect(matches('a.*.>', 'a.b')).toBe(false);
    expect(matches('a.*.>', 'a.b.c')).toBe(true);
    const s = subjects();
    expect(matches(s.tree('r'), s.event('r', 'child'))).toBe(true);
    expect(matches(s.tree('r'), s.event('other', 'r'))).toBe(false);
    expect(matches(s.allEvents(), s.op('r'))).toBe(false);
  });

  it('finds every matching filter in the order they were added, and forgets removed ones', () => {
    const tree = new SubjectTree<string>();
    tree.add('a.>', 'rest');
    tree.add('a.b.c', 'literal');
    tree.add('*.b.*', 'stars');
    tree.add('a.b.c', 'literal again');
    tree.add('>', 'everything');
    tree.add('a.b', 'shorter');
    expect(tree.match('a.b.c')).toEqual(['rest', 'literal', 'stars', 'literal again', 'everything']);
    expect(tree.delete('a.b.c', 'literal')).toBe(true);
    expect(tree.delete('a.b.c', 'literal')).toBe(false);
    expect(tree.delete('a.*.c', 'stars')).toBe(false);
    expect(tree.delete('a.>', 'rest')).toBe(true);
    expect(tree.match('a.b.c')).toEqual(['stars', 'literal again', 'everything']);
    for (const [filter, entry] of [
      ['*.b.*', 'stars'],
      ['a.b.c', 'literal again'],
      ['>', 'everything'],
      ['a.b', 'shorter'],
    ] as const) {
      expect(tree.delete(filter, entry)).toBe(true);
    }
    expect(tree.match('a.b.c')).toEqual([]);
    expect(tree.match('a.b')).toEqual([]);
    // Pruned branches grow back when used again.
    tree.add('a.b.c', 'back');
    expect(tree.match('a.b.c')).toEqual(['back']);
  });

  it('checks the grammar of published subjects and filters', () => {
    expect(() => assertPublishSubject('a.*')).toThrow(InvalidSubjectError);
    expect(() => assertPublishSubject('a.b>')).toThrow(InvalidSubjectError);
    expect(() => assertSubscribeSubject('a.>.b')).toThrow(/must be the last token/);
    expect(() => assertSubscribeSubject('a.b*')).toThrow(InvalidSubjectError);
    expect(() => assertSubscribeSubject('*.>')).not.toThrow();
  });
});

describe('InProcessBus', () => {
  it('never delivers inside the publish call', async () => {
    const bus = createInProcessBus();
    let delivered = false;
    bus.subscribe('x', () => {
      delivered = true;
    });
    const publishing = bus.publish('x', placed('s'));
    expect(delivered).toBe(false);
    await publishing;
    await waitFor(() => delivered, 'delivery');
    await bus.close();
  });

  it('logs what it drops and what fails in handlers', async () => {
    const { logger, lines } = capturingLogger();
    const bus = new InProcessBroker({ logger }).connect();
    bus.subscribe('x', (message) => {
      if (message.kind === 'placed' && message.session_id === 'boom') throw new Error('kaput');
    });
    await bus.publishRaw('x', '{"kind":"placed","session_id":7}');
    await bus.publishRaw('x', '{');
    await bus.publish('x', placed('boom'));
    await waitFor(() => lines.length >= 3, 'three log lines');
    expect(lines[0]?.msg).toBe('dropped an invalid bus message');
    expect(String(lines[0]?.problems)).toContain('session_id');
    expect(lines[0]?.subject).toBe('x');
    expect(lines[1]?.msg).toBe('dropped a bus message that is not JSON');
    expect(lines[2]?.msg).toBe('bus handler failed');
    expect(JSON.stringify(lines[2]?.err)).toContain('kaput');
    await bus.close();
  });

  it('keeps separate brokers apart', async () => {
    const a = new InProcessBus();
    const b = createInProcessBus();
    let crossed = false;
    b.subscribe('x', () => {
      crossed = true;
    });
    await expect(a.request('x', placed('s'), { timeoutMs: 60_000 })).rejects.toThrow(/no responders/);
    await a.publish('x', placed('s'));
    // Prove delivery has had its chance: a message on `a` itself goes round.
    let own = false;
    a.subscribe('y', () => {
      own = true;
    });
    await a.publish('y', placed('s'));
    await waitFor(() => own, 'own delivery');
    expect(crossed).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('closes every connection when the broker closes', async () => {
    const broker = new InProcessBroker();
    const a = broker.connect();
    const b = broker.connect();
    b.subscribe('x', () => {});
    const pending = a.request('x', placed('s'), { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await broker.close();
    expect(await pending).toBeInstanceOf(BusClosedError);
    expect(a.closed && b.closed).toBe(true);
    await expect(b.publishRaw('x', '{}')).rejects.toBeInstanceOf(BusClosedError);
    // A connection made afterwards still works: the broker itself holds no closed state.
    const c = broker.connect();
    let got = false;
    c.subscribe('z', () => {
      got = true;
    });
    await c.publish('z', placed('s'));
    await waitFor(() => got, 'delivery on a new connection');
    await c.close();
  });

  it('rejects a bad request timeout and a bad queue name', async () => {
    const bus = createInProcessBus();
    await expect(bus.request('x', placed('s'), { timeoutMs: 0 })).rejects.toBeInstanceOf(RangeError);
    expect(() => bus.subscribe('x', () => {}, { queue: 'a b' })).toThrow(/queue group/);
    await bus.close();
  });
});
