import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { describeZodError, ReviewDecision, type Event, type Submission } from '../../protocol/index.js';

/**
 * Where the inspector gets what it shows and where it sends what the page answers: a runtime
 * (in-process, or a gateway on NATS). The page sees the events any client of that runtime sees,
 * and its approvals are submissions like any client's.
 */
export interface InspectSource {
  onEvent(listener: (event: Event) => void): () => void;
  submit(submission: Submission): Promise<void>;
}

export interface InspectorOptions {
  /** The loopback port to listen on; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Events kept for a page that connects later (streaming deltas are never kept). Default 20 000. */
  readonly replayLimit?: number;
}

export interface Inspector {
  /** The page's address, token included: the only way in. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** What the page may POST: an answer to one pending approval. */
const ApprovalAnswer = z.object({
  session_id: z.string().min(1),
  call_id: z.string().min(1),
  kind: z.enum(['exec', 'patch', 'tool']),
  decision: ReviewDecision,
});

const STATIC_FILES: Readonly<Record<string, string>> = {
  '': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};
const PAGE_DIR = new URL('./page/', import.meta.url);
/** An answer is a few hundred bytes; anything this large is not one. */
const MAX_BODY_BYTES = 64 * 1024;
/** A page that reads its stream slower than events come is cut off; it reconnects and replays. */
const MAX_STREAM_BACKLOG_BYTES = 8 * 1024 * 1024;

const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
} as const;

/**
 * `--inspect`: a live page of the agent tree, served on 127.0.0.1 only. Everything lives under
 * `/<token>/`, a random 192-bit token, and a request is refused unless its Host names this
 * loopback address (a DNS-rebound name does not) and, when it carries an Origin, that Origin is
 * this server (another site's page cannot read the stream or answer approvals). The page gets
 * the events as server-sent events: first those kept so far, then live.
 */
export async function startInspector(source: InspectSource, options: InspectorOptions = {}): Promise<Inspector> {
  const token = randomBytes(24).toString('base64url');
  const replayLimit = options.replayLimit ?? 20_000;
  const kept: string[] = [];
  const streams = new Set<ServerResponse>();
  let port = 0;

  const stop = source.onEvent((event) => {
    const line = `data: ${JSON.stringify(event)}\n\n`;
    if (!event.msg.type.endsWith('_delta')) {
      kept.push(line);
      if (kept.length > replayLimit) kept.splice(0, kept.length - replayLimit);
    }
    for (const stream of streams) {
      if (stream.writableLength > MAX_STREAM_BACKLOG_BYTES) stream.destroy();
      else stream.write(line);
    }
  });

  const server: Server = createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => refuse(response, 500, `inspector failure: ${(error as Error).message}`));
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const loopback = [`127.0.0.1:${port}`, `localhost:${port}`];
    if (!loopback.includes(request.headers.host ?? '')) return refuse(response, 421, `unexpected Host "${request.headers.host ?? ''}"`);
    const origin = request.headers.origin;
    if (origin !== undefined && !loopback.some((host) => origin === `http://${host}`)) return refuse(response, 403, `foreign Origin "${origin}"`);
    const url = new URL(request.url ?? '/', `http://${loopback[0]}`);
    const [, given = '', ...rest] = url.pathname.split('/');
    if (!sameToken(given, token)) return refuse(response, 403, 'the address lacks the inspector token');
    if (rest.length === 0) {
      // The page's files are named relative to it: it must be read from `/<token>/`.
      response.writeHead(308, { ...SECURITY_HEADERS, Location: `/${token}/` });
      response.end();
      return;
    }
    const path = rest.join('/');
    if (request.method === 'GET' && Object.hasOwn(STATIC_FILES, path)) return sendFile(response, path);
    if (request.method === 'GET' && path === 'events') return openStream(response);
    if (request.method === 'POST' && path === 'approval') return answer(request, response);
    return refuse(response, 404, `no ${request.method ?? ''} /${path} here`);
  }

  async function sendFile(response: ServerResponse, path: string): Promise<void> {
    const body = await readFile(new URL(path === '' ? 'index.html' : path, PAGE_DIR));
    response.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': STATIC_FILES[path] });
    response.end(body);
  }

  function openStream(response: ServerResponse): void {
    response.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    // A reconnecting page starts again from what is kept: it rebuilds its view from scratch.
    response.write(`retry: 1000\nevent: reset\ndata: {}\n\n${kept.join('')}`);
    streams.add(response);
    response.on('close', () => streams.delete(response));
  }

  async function answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // A browser sends Origin with every POST; a cross-site form cannot send JSON without asking first.
    if (request.headers.origin === undefined) return refuse(response, 403, 'an answer must carry the Origin of the page');
    if (!(request.headers['content-type'] ?? '').startsWith('application/json')) return refuse(response, 415, 'an answer must be application/json');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return refuse(response, 413, `an answer is at most ${MAX_BODY_BYTES} bytes`);
      chunks.push(chunk);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      return refuse(response, 400, `the answer is not valid JSON: ${(error as Error).message}`);
    }
    const parsed = ApprovalAnswer.safeParse(raw);
    if (!parsed.success) return refuse(response, 400, `invalid answer: ${describeZodError(parsed.error)}`);
    const { session_id, call_id, kind, decision } = parsed.data;
    const id = `inspect-${randomUUID()}`;
    // The same op any client sends: its outcome (or its error) comes back as events to everyone.
    const type = kind === 'exec' ? 'exec_approval' : kind === 'patch' ? 'patch_approval' : 'tool_approval';
    await source.submit({ id, session_id, op: { type, id: call_id, decision } });
    response.writeHead(202, { ...SECURITY_HEADERS, 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ submission_id: id }));
  }

  server.listen(options.port ?? 0, '127.0.0.1');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (error) {
    stop();
    throw new Error(`the inspector cannot listen on 127.0.0.1:${options.port ?? 0}: ${(error as Error).message}`, { cause: error });
  }
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/${token}/`,
    port,
    async close() {
      stop();
      for (const stream of streams) stream.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function refuse(response: ServerResponse, status: number, message: string): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
  response.end(`${message}\n`);
}
