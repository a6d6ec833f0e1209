/**
 * A loopback TCP proxy with injectable faults, one per client → server path (an agent's path to one
 * etcd member, a controller's path to EC2), so that one host can be partitioned alone while the rest
 * of the cluster stays connected. Modes:
 * - `pass`: bytes flow both ways.
 * - `cut`: every open connection is destroyed and new ones are refused (a port that says RST).
 * - `blackhole`: connections are accepted (and old ones kept) but no byte goes either way, so the
 *   client sees a hang, not an error — the case gRPC notices only by its own timeouts.
 * - `delay`: every chunk is delivered `delayMs` late, in order.
 * - `slow-close`: new connections are accepted, then closed after `delayMs` without a byte through
 *   (a member whose port accepts and then drops connections, issue 9 finding 8).
 *
 * A chunk still queued when its sender's socket is gone is dropped (a client that gave up must not
 * have its request delivered later by us: that would be a fault of the proxy, not of the network the
 * system is designed for). `onRequest` sees each complete HTTP request sent through (the EC2 path),
 * at the moment its last byte is written to the server.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type ProxyMode = { mode: 'pass' } | { mode: 'cut' } | { mode: 'blackhole' } | { mode: 'delay'; delayMs: number } | { mode: 'slow-close'; delayMs: number };

export interface HttpRequestSeen {
  at: number;
  method: string;
  path: string;
  body: string;
}

export interface FaultProxyOptions {
  targetHost?: string;
  targetPort: number;
  /** A name for logs and the history (e.g. `agent-2→etcd1`). */
  name: string;
  onRequest?: (req: HttpRequestSeen) => void;
}

interface Pair {
  inbound: Socket;
  outbound: Socket;
}

export class FaultProxy {
  private server: Server | null = null;
  private readonly pairs = new Set<Pair>();
  private current: ProxyMode = { mode: 'pass' };
  port = 0;

  constructor(private readonly opts: FaultProxyOptions) {}

  get name(): string {
    return this.opts.name;
  }

  get mode(): ProxyMode {
    return this.current;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<string> {
    await this.listen();
    return this.url;
  }

  private async listen(): Promise<void> {
    const server = createServer((inbound) => this.accept(inbound));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  private accept(inbound: Socket): void {
    inbound.on('error', () => undefined);
    const mode = this.current;
    if (mode.mode === 'cut') {
      inbound.destroy();
      return;
    }
    if (mode.mode === 'slow-close') {
      setTimeout(() => inbound.destroy(), mode.delayMs).unref();
      return;
    }
    const outbound = connect(this.opts.targetPort, this.opts.targetHost ?? '127.0.0.1');
    outbound.on('error', () => undefined);
    const pair: Pair = { inbound, outbound };
    this.pairs.add(pair);
    const close = (): void => {
      this.pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('close', close);
    outbound.on('close', close);
    const tap = this.opts.onRequest ? httpTap(this.opts.onRequest) : undefined;
    inbound.on('data', (chunk: Buffer) => this.forward(inbound, outbound, chunk, tap));
    outbound.on('data', (chunk: Buffer) => this.forward(outbound, inbound, chunk));
  }

  private forward(from: Socket, to: Socket, chunk: Buffer, tap?: (chunk: Buffer) => void): void {
    const mode = this.current;
    if (mode.mode === 'blackhole' || mode.mode === 'cut' || mode.mode === 'slow-close') return; // swallowed
    const write = (): void => {
      if (from.destroyed || to.destroyed) return;
      to.write(chunk);
      tap?.(chunk);
    };
    if (mode.mode === 'delay') {
      // Pause so chunks keep their order; resume after this one is out.
      from.pause();
      setTimeout(() => {
        write();
        from.resume();
      }, mode.delayMs).unref();
    } else write();
  }

  /** Switches mode; `cut`/`slow-close` also destroy the open connections. */
  set(mode: ProxyMode): void {
    const was = this.current;
    this.current = mode;
    // Leaving a black hole: the swallowed bytes broke those streams (as a TCP connection whose
    // retransmissions timed out), so drop them and let clients reconnect.
    if (mode.mode === 'cut' || mode.mode === 'slow-close' || (was.mode === 'blackhole' && mode.mode !== 'blackhole')) {
      for (const p of [...this.pairs]) {
        p.inbound.destroy();
        p.outbound.destroy();
      }
      this.pairs.clear();
    }
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.inbound.destroy();
      p.outbound.destroy();
    }
    this.pairs.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Splits a client → server byte stream into HTTP/1.1 requests (Content-Length bodies only: the AWS
 * SDK's Query protocol always sends one) and reports each once its last byte went through.
 */
export function httpTap(onRequest: (req: HttpRequestSeen) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = buf.subarray(0, headEnd).toString('latin1');
      const [requestLine = '', ...headers] = head.split('\r\n');
      const lengthHeader = headers.find((h) => h.toLowerCase().startsWith('content-length:'));
      const length = lengthHeader ? Number(lengthHeader.slice(lengthHeader.indexOf(':') + 1).trim()) : 0;
      if (buf.length < headEnd + 4 + length) return;
      const body = buf.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8');
      buf = buf.subarray(headEnd + 4 + length);
      const [method = '', path = ''] = requestLine.split(' ');
      onRequest({ at: Date.now(), method, path, body });
    }
  };
}
