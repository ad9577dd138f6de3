/**
 * The `fetch` troupe gives the OpenAI SDK: requests go out through node:http and node:https on
 * kept-alive connections, and the answer comes back as a standard Response whose body streams
 * the socket. The SDK reads only the status, the headers and the body, and Node's own fetch
 * (undici) does a lot of work besides: a bare SDK loop against the fake model spends 0.7-1.1 ms
 * less per streamed request through this (bench/README.md). Every agent of a host pays that
 * on every request.
 *
 * What the SDK's model requests send is a string body; anything else (a Request object, a
 * stream or form body) goes to the global fetch unchanged. Redirects are not followed: a model
 * endpoint that redirects is misconfigured, and the 3xx surfaces as an HTTP error naming it.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** Idle connections close after this long, as undici's do, before servers drop them under us. */
const IDLE_SOCKET_MS = 4_000;

const agents = {
  'http:': new HttpAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS }),
  'https:': new HttpsAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS }),
};

/** Statuses whose responses have no body (a Response with one of them must be built without). */
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

export async function httpFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const { body } = init;
  if (input instanceof Request || !(body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array)) {
    return fetch(input, init);
  }
  const url = new URL(input);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fetch(input, init);

  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, name) => {
    headers[name] = value;
  });
  const options: RequestOptions = {
    method: init.method ?? 'GET',
    headers,
    agent: agents[url.protocol],
    ...(init.signal ? { signal: init.signal } : {}),
  };
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Response>((resolve, reject) => {
    const request = send(url, options, (response) => {
      try {
        resolve(toResponse(response, init.signal ?? null));
      } catch (error) {
        // A status a Response cannot have (outside 200-599): fail the request, not the process.
        response.destroy();
        reject(
          error instanceof RangeError ? new TypeError(`${url.origin} answered with HTTP status ${response.statusCode}`, { cause: error }) : asError(error),
        );
      }
    });
    request.once('error', reject);
    request.end(body ?? undefined);
  });
}

function toResponse(response: IncomingMessage, signal: AbortSignal | null): Response {
  const status = response.statusCode ?? 0;
  const headers = new Headers();
  const raw = response.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  const init = { status, statusText: response.statusMessage ?? '', headers };
  if (NULL_BODY_STATUSES.has(status)) {
    response.resume();
    return new Response(null, init);
  }
  const body = decoded(response);
  if (signal) {
    // Aborting destroys the request, and the body would fail with a bare ECONNRESET; a fetch
    // body fails with the signal's reason, which is how the SDK tells a cancel from a drop.
    const onAbort = () => body.destroy(signal.reason as Error);
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      body.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }
  return new Response(Readable.toWeb(body) as ReadableStream<Uint8Array>, init);
}

/** The body without its content coding: fetch undoes it, so callers of a fetch expect that. */
function decoded(response: IncomingMessage): Readable {
  const coding = response.headers['content-encoding']?.trim().toLowerCase();
  const decoder =
    coding === 'gzip' || coding === 'x-gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : coding === 'br' ? createBrotliDecompress() : null;
  if (decoder === null) return response;
  response.once('error', (error) => decoder.destroy(error));
  return response.pipe(decoder);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
