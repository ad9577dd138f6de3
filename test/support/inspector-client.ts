import { Event } from '../../protocol/index.js';

/** The inspector address a process printed on stderr, or undefined while it has not. */
export function inspectorUrlIn(stderr: string): string | undefined {
  return /inspector at (http:\/\/127\.0\.0\.1:\d+\/[\w-]+\/)/.exec(stderr)?.[1];
}

/** Read the inspector's event stream, as the page's EventSource does, until `until` holds. */
export async function readInspectorStream(url: string, until: (events: Event[]) => boolean): Promise<Event[]> {
  const controller = new AbortController();
  const response = await fetch(`${url}events`, { signal: controller.signal });
  if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) throw new Error(`not an event stream: ${response.status}`);
  const events: Event[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    const blocks = buffered.split('\n\n');
    buffered = blocks.pop() ?? '';
    for (const block of blocks) {
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      if (data === undefined || block.includes('event: reset')) continue;
      events.push(Event.parse(JSON.parse(data.slice('data: '.length))));
    }
    if (until(events)) break;
  }
  controller.abort();
  return events;
}

/** Answer an approval as the page does: a same-origin JSON POST. */
export function answerFromInspector(url: string, answer: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}approval`, {
    method: 'POST',
    headers: { Origin: new URL(url).origin, 'Content-Type': 'application/json' },
    body: JSON.stringify(answer),
  });
}
