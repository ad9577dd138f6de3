import { z } from 'zod';
import { BusMessage } from './bus.js';
import { Event } from './events.js';
import { Submission } from './ops.js';
import { RolloutLine } from './rollout.js';

/** The JSON Schema of the wire protocol, generated from the zod schemas (`troupe schema`). */
export function wireJsonSchema(): Record<string, unknown> {
  const io = (schema: z.ZodType, dir: 'input' | 'output') => z.toJSONSchema(schema, { io: dir, unrepresentable: 'any', target: 'draft-2020-12' });
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'troupe wire protocol v1',
    definitions: {
      Submission: io(Submission, 'input'),
      Event: io(Event, 'output'),
      RolloutLine: io(RolloutLine, 'output'),
      BusMessage: io(BusMessage, 'output'),
    },
  };
}
