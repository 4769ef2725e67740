/**
 * The floor's unary calls on protogate's own HTTP/2 client connection (src/upstream/h2/connection.ts) instead of
 * node:http2, to measure what node:http2 costs a Node gateway (BENCHMARKS.md, session 5). node:http2 turns every
 * received header name and value into an external string, which V8 always allocates in old space, so a gateway on
 * it runs a Mark-Compact every few seconds under load. Used by bench/floor-gateway.ts with FLOOR_RAW_H2=1.
 * Plaintext (h2c with prior knowledge), one connection, no reconnect: a measuring tool, not a client.
 */
import net from 'node:net';
import { H2Connection, type H2StreamError } from '../src/upstream/h2/connection.ts';

export interface RawReply { status: number; message: string; body: Buffer }
type Done = (err: Error | undefined, reply?: RawReply) => void;

export class RawH2Client {
  readonly #conn: H2Connection;
  readonly #authority: string;

  constructor(host: string, port: number) {
    this.#authority = `${host}:${port}`;
    this.#conn = new H2Connection(net.connect({ host, port, noDelay: true }));
  }

  unary(path: string, grpcFrame: Buffer, done: Done): void {
    let status = 0;
    const chunks: Buffer[] = [];
    let stream: ReturnType<H2Connection['request']>;
    try {
      stream = this.#conn.request([[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', this.#authority],
        ['content-type', 'application/grpc'], ['te', 'trailers']], {
        onHeaders(fields, end) {
          if (!end) {
            for (let i = 0; i < fields.length; i += 2) if (fields[i] === ':status') status = Number(fields[i + 1]);
            return;
          }
          let grpcStatus = -1, message = '';
          for (let i = 0; i < fields.length; i += 2) {
            if (fields[i] === 'grpc-status') grpcStatus = Number(fields[i + 1]);
            else if (fields[i] === 'grpc-message') message = fields[i + 1]!;
            else if (fields[i] === ':status') status = Number(fields[i + 1]);
          }
          if (status !== 200 || grpcStatus < 0) done(new Error(`HTTP ${status}, grpc-status ${grpcStatus}`));
          else done(undefined, { status: grpcStatus, message, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
        },
        onData(chunk) {
          // The chunk is a view of the socket's read buffer: copied, then the window is given back.
          chunks.push(Buffer.from(chunk));
          stream.consumed(chunk.length);
        },
        onError: (err: H2StreamError) => done(err),
      });
    } catch (err) {
      done(err as Error);
      return;
    }
    stream.write(grpcFrame, true);
  }

  close(): void {
    this.#conn.close();
  }
}
