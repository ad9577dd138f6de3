/**
 * A small MCP server for tests, built with the official SDK. Over stdio by default; with
 * `--http` it serves streamable HTTP on 127.0.0.1 (a free port) and prints its URL on stdout.
 *
 * Tools: `echo` (read-only), `fail` (an `isError` result), `slow` (waits `ms`), `pid`, `env`, `ask`
 * (an elicitation round trip), `picture` (an image block), `add_tool` (registers `late`, so
 * clients get `tools/list_changed`), and `odd.name/with spaces` (a name to sanitize).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

/** Path of the compiled fixture (tests run it with plain node, from dist/ after `npm run build`). */
export function mcpEchoServerPath(): string {
  const here = fileURLToPath(import.meta.url);
  return here.includes('/dist/') ? here : here.replace(/\/test\/support\/mcp-echo-server\.ts$/, '/dist/test/support/mcp-echo-server.js');
}

const text = (value: string): { content: { type: 'text'; text: string }[] } => ({ content: [{ type: 'text', text: value }] });

function buildServer(): McpServer {
  const server = new McpServer({ name: 'echo-fixture', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echo the text back.', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } },
    async ({ text: value }) => text(`echo: ${value}`),
  );
  server.registerTool('fail', { description: 'Always fails.', inputSchema: { message: z.string().optional() } }, async ({ message }) => ({
    ...text(message ?? 'it failed'),
    isError: true,
  }));
  server.registerTool('slow', { description: 'Wait, then answer.', inputSchema: { ms: z.number() } }, async ({ ms }, extra) => {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      extra.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return text(`waited ${ms} ms`);
  });
  server.registerTool('huge', { description: 'A text result of `bytes` bytes.', inputSchema: { bytes: z.number() } }, async ({ bytes }) =>
    text('x'.repeat(bytes)),
  );
  server.registerTool('pid', { description: 'The process id of this server.' }, async () => text(String(process.pid)));
  server.registerTool('env', { description: "This server's environment, one NAME=value a line." }, async () =>
    text(
      Object.entries(process.env)
        .map(([name, value]) => `${name}=${value ?? ''}`)
        .sort()
        .join('\n'),
    ),
  );
  server.registerTool('ask', { description: 'Ask the user a question.', inputSchema: { question: z.string() } }, async ({ question }) => {
    const answer = await server.server.elicitInput({
      message: question,
      requestedSchema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] },
    });
    return text(answer.action === 'accept' ? `answer: ${String(answer.content?.answer)}` : `action: ${answer.action}`);
  });
  server.registerTool('picture', { description: 'A tiny image.' }, async () => ({
    content: [
      { type: 'text', text: 'here it is' },
      { type: 'image', data: Buffer.from('not really a png').toString('base64'), mimeType: 'image/png' },
    ],
  }));
  server.registerTool('add_tool', { description: 'Register the tool `late`.' }, async () => {
    server.registerTool('late', { description: 'Added while running.' }, async () => text('late tool'));
    return text('added');
  });
  server.registerTool('odd.name/with spaces', { description: 'A name models cannot use as is.' }, async () => text('odd'));
  return server;
}

async function main(): Promise<void> {
  if (!process.argv.includes('--http')) {
    await buildServer().connect(new StdioServerTransport());
    return;
  }
  // One client per process is all the tests need: one stateful session.
  const server = buildServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID() });
  await server.connect(transport);
  const http = createServer((req, res) => {
    transport.handleRequest(req, res).catch((error: unknown) => {
      process.stderr.write(`request failed: ${String(error)}\n`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  http.listen(0, '127.0.0.1', () => {
    const { port } = http.address() as AddressInfo;
    process.stdout.write(`http://127.0.0.1:${port}/mcp\n`);
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    process.stderr.write(`mcp-echo-server: ${String(error)}\n`);
    process.exit(1);
  });
}
