import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An OTLP attribute value as the JSON encoding writes it. */
type AnyValue = { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean };
interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly attributes: Record<string, unknown>;
  readonly events: { name: string; attributes: Record<string, unknown> }[];
  readonly resource: Record<string, unknown>;
}

export interface ReceivedLog {
  readonly eventName: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly attributes: Record<string, unknown>;
  readonly resource: Record<string, unknown>;
}

function value(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return undefined;
}

function attributes(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface TracesRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: {
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        attributes?: KeyValue[];
        events?: { name: string; attributes?: KeyValue[] }[];
      }[];
    }[];
  }[];
}

interface LogsRequest {
  resourceLogs?: {
    resource?: { attributes?: KeyValue[] };
    scopeLogs?: { logRecords?: { eventName?: string; traceId?: string; spanId?: string; attributes?: KeyValue[] }[] }[];
  }[];
}

/**
 * A loopback OTLP/HTTP receiver for the JSON encoding (`application/json`), as a collector
 * would be: it keeps every span and log record it is sent, decoded, and answers 200.
 * Anything else (protobuf, another path) is counted in `rejected` and answered 415.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly logs: ReceivedLog[] = [];
  rejected = 0;
  readonly #server = createServer((request, response) => {
    (async () => {
      const text = await body(request);
      const json = request.headers['content-type']?.startsWith('application/json') ?? false;
      if (request.method !== 'POST' || !json) {
        this.rejected++;
        response.writeHead(415).end();
        return;
      }
      if (request.url === '/v1/traces') this.#traces(JSON.parse(text) as TracesRequest);
      else if (request.url === '/v1/logs') this.#logs(JSON.parse(text) as LogsRequest);
      else this.rejected++;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    })().catch(() => {
      // Not JSON, or the request broke off: counted as rejected, as a collector would refuse it.
      this.rejected++;
      if (!response.headersSent) response.writeHead(400);
      response.end();
    });
  });

  static async start(): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver();
    await new Promise<void>((resolve) => receiver.#server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #traces(request: TracesRequest): void {
    for (const rs of request.resourceSpans ?? []) {
      const resource = attributes(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? [])
        for (const s of ss.spans ?? [])
          this.spans.push({
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            attributes: attributes(s.attributes),
            events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attributes(e.attributes) })),
            resource,
          });
    }
  }

  #logs(request: LogsRequest): void {
    for (const rl of request.resourceLogs ?? []) {
      const resource = attributes(rl.resource?.attributes);
      for (const sl of rl.scopeLogs ?? [])
        for (const r of sl.logRecords ?? [])
          this.logs.push({ eventName: r.eventName ?? '', traceId: r.traceId ?? '', spanId: r.spanId ?? '', attributes: attributes(r.attributes), resource });
    }
  }
}
