import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { httpFetch } from '../lib/model/http-fetch.js';
import { waitFor } from './support/wait.js';

interface Seen {
  readonly method: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly port: number;
}

let server: Server | null = null;

afterEach(async () => {
  const open = server;
  server = null;
  if (open) {
    open.closeAllConnections();
    await new Promise<void>((resolve) => open.close(() => resolve()));
  }
});

/** A loopback server answering with `handler`; returns its base URL and what it received. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; closed: Promise<void>[] }> {
  const seen: Seen[] = [];
  const closed: Promise<void>[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', headers: req.headers, body, port: req.socket.remotePort ?? 0 });
      closed.push(new Promise((resolve) => res.once('close', () => resolve())));
      handler(req, res);
    });
  });
  const listening = server;
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(listening.address() as AddressInfo).port}`, seen, closed };
}

describe('httpFetch', () => {
  it('sends the method, headers and body, and answers with status, headers and the body', async () => {
    const { url, seen } = await serve((_req, res) => {
      res.writeHead(201, 'Made', [
        ['x-ratelimit-remaining-requests', '41'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ]);
      res.end('{"ok":true}');
    });
    const response = await httpFetch(`${url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
      body: '{"input":"héllo"}',
    });

    expect(seen).toEqual([
      expect.objectContaining({
        method: 'POST',
        body: '{"input":"héllo"}',
        headers: expect.objectContaining({
          'content-type': 'application/json',
          authorization: 'Bearer k',
          'content-length': String(Buffer.byteLength('{"input":"héllo"}')),
        }),
      }),
    ]);
    expect(response).toBeInstanceOf(Response);
    expect([response.status, response.statusText, response.ok]).toEqual([201, 'Made', true]);
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('41');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await response.json()).toEqual({ ok: true });
  });

  it('streams the body as it arrives', async () => {
    let finish: () => void = () => undefined;
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      finish = () => res.end('data: two\n\n');
    });
    const response = await httpFetch(url, { method: 'POST', body: '{}' });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: one\n\n');
    finish();
    const rest: string[] = [];
    for (let next = await reader.read(); !next.done; next = await reader.read()) rest.push(new TextDecoder().decode(next.value));
    expect(rest.join('')).toBe('data: two\n\n');
  });

  it('undoes a gzip content coding, as fetch does', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync('{"error":{"message":"bad"}}'));
    });
    const response = await httpFetch(url, { method: 'POST', body: '{}' });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { message: 'bad' } });
  });

  it('gives a response without a body for 204', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const response = await httpFetch(url, { method: 'DELETE' });
    expect([response.status, response.body]).toEqual([204, null]);
  });

  it('fails the body when the connection drops mid-stream', async () => {
    const { url } = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n', () => setTimeout(() => req.socket.destroy(), 20));
    });
    const response = await httpFetch(url, { method: 'POST', body: '{}' });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: one\n\n');
    await expect(reader.read()).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('rejects a status no Response can have instead of throwing out of the socket', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(999);
      res.end('?');
    });
    await expect(httpFetch(url, { method: 'POST', body: '{}' })).rejects.toThrow(`${url} answered with HTTP status 999`);
  });

  it('reuses the connection for the next request', async () => {
    const { url, seen } = await serve((_req, res) => res.end('ok'));
    for (let i = 0; i < 3; i++) expect(await (await httpFetch(url, { method: 'POST', body: String(i) })).text()).toBe('ok');
    expect(seen.map((request) => request.body)).toEqual(['0', '1', '2']);
    expect(new Set(seen.map((request) => request.port)).size).toBe(1);
  });

  it('stops reading and closes the connection when the signal aborts mid-body', async () => {
    const { url, closed } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
    });
    const controller = new AbortController();
    const response = await httpFetch(url, { method: 'POST', body: '{}', signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
    await waitFor(() => closed.length === 1);
    await closed[0];
  });

  it('rejects when the server cannot be reached, and when aborted before the answer', async () => {
    const { url } = await serve(() => undefined);
    const port = Number(new URL(url).port);
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server!.closeAllConnections();
    server = null;
    await expect(httpFetch(`http://127.0.0.1:${port}`, { method: 'POST', body: '{}' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    const hanging = await serve(() => undefined);
    const controller = new AbortController();
    const pending = httpFetch(hanging.url, { method: 'POST', body: '{}', signal: controller.signal });
    await waitFor(() => hanging.seen.length === 1);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('httpFetch over TLS', () => {
  /** The compiled module, for a child process whose trusted certificates the test chooses. */
  const source = fileURLToPath(new URL('../lib/model/http-fetch.js', import.meta.url));
  const MODULE = source.includes('/dist/') ? source : source.replace(/\/lib\/model\/http-fetch\.js$/, '/dist/lib/model/http-fetch.js');
  const run = promisify(execFile);

  it('verifies the server certificate and talks to a server it trusts', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'troupe-tls-'));
    const tls = createTlsServer();
    try {
      const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
      await run('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ]);
      tls.setSecureContext({ key: await readFile(key), cert: await readFile(cert) });
      tls.on('request', (_req: IncomingMessage, res: ServerResponse) => res.end('secret'));
      await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
      const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/v1/responses`;
      const script = `import { httpFetch } from ${JSON.stringify(MODULE)};
        try { const r = await httpFetch(${JSON.stringify(url)}, { method: 'POST', body: '{}' }); console.log(r.status, await r.text()); }
        catch (error) { console.log('failed', error.code); }`;
      const fetchAs = async (env: NodeJS.ProcessEnv) => (await run(process.execPath, ['--input-type=module', '-e', script], { env })).stdout.trim();

      expect(await fetchAs({ ...process.env, NODE_EXTRA_CA_CERTS: cert })).toBe('200 secret');
      expect(await fetchAs(process.env)).toBe('failed DEPTH_ZERO_SELF_SIGNED_CERT');
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
