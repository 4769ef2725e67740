/**
 * The floor of a Node REST→gRPC gateway on this stack: the least work any Node gateway must do per unary call, with
 * none of protogate's logic (no routing, metadata mapping, limits, metrics, logs, hooks, error mapping, pooling).
 *
 *   node:http server → JSON.parse → protobufjs static encode → ONE node:http2 session, session.request()
 *   → length-prefixed frame → protobufjs decode → toObject/JSON.stringify → res.end
 *
 * Run by bench/rest.ts with `--sut floor` in place of bench/peer-gateway.ts (same env, same pinning), so its req/s
 * and CPU per request are measured in the same run as protogate's and grpc-gateway's. It answers one question:
 * how much of protogate's per-request CPU is the stack itself (node:http + node:http2 + a protobuf codec)?
 * Only Echo (POST /v1/echo) and Get (GET /v1/items/{id}) are served; it is not a gateway.
 */
import http from 'node:http';
import http2 from 'node:http2';
import protobuf from 'protobufjs';
import { RawH2Client } from './raw-h2.ts';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`bench/floor-gateway.ts: ${name} is not set (run it through bench/rest.ts --sut floor)`);
  return v;
};
const root = new protobuf.Root();
const googleProtos = new URL('../node_modules/google-proto-files/', import.meta.url).pathname;
root.resolvePath = (_origin, target) => {
  if (target.startsWith('/')) return target;
  return target.startsWith('google/') ? `${googleProtos}${target}` : `${env('PROTO_ROOT')}/${target}`;
};
root.loadSync(env('PROTO_FILE'), { keepCase: false });
const EchoRequest = root.lookupType('bench.v1.EchoRequest');
const GetRequest = root.lookupType('bench.v1.GetRequest');
const EchoResponse = root.lookupType('bench.v1.EchoResponse');
const toJsonOptions = { longs: String, enums: String, bytes: String };

// FLOOR_RAW_H2=1: the calls go through bench/raw-h2.ts (a spike HTTP/2 client on a plain socket) instead of
// node:http2, to measure what node:http2 itself costs (its headers are external strings in old space).
const raw = process.env.FLOOR_RAW_H2 === '1'
  ? new RawH2Client(env('BACKEND_ADDR').split(':')[0]!, Number(env('BACKEND_ADDR').split(':')[1]))
  : undefined;
const session = raw ? undefined : http2.connect(`http://${env('BACKEND_ADDR')}`);
session?.on('error', (err) => { console.error('floor: backend session', err.message); process.exit(1); });

function call(path: string, message: Uint8Array, done: (err: Error | undefined, reply?: Buffer) => void): void {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  if (raw) {
    raw.unary(path, frame, (err, r) => {
      if (err || !r) done(err ?? new Error('no reply'));
      else if (r.status !== 0) done(new Error(`grpc-status ${r.status}: ${r.message}`));
      else done(undefined, r.body.subarray(5));
    });
    return;
  }
  if (!session) return;
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    done(undefined, all.subarray(5));
  });
  stream.on('error', (err) => done(err));
  stream.end(frame);
}

function reply(res: http.ServerResponse, err: Error | undefined, bytes?: Buffer): void {
  if (err || !bytes) {
    res.statusCode = 502;
    res.end('{"code":14,"message":"backend"}');
    return;
  }
  const body = JSON.stringify(EchoResponse.toObject(EchoResponse.decode(bytes), toJsonOptions));
  res.setHeader('content-type', 'application/json');
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/v1/items/')) {
    const id = decodeURIComponent(url.slice('/v1/items/'.length));
    call('/bench.v1.Echo/Get', GetRequest.encode(GetRequest.fromObject({ id })).finish(), (e, b) => reply(res, e, b));
    return;
  }
  if (req.method === 'POST' && url === '/v1/echo') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let msg: protobuf.Message;
      try {
        const obj = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        // protobufjs has no JSON form for Timestamp: the least a gateway must do is parse the RFC 3339 string.
        if (typeof obj.createdAt === 'string') {
          const ms = Date.parse(obj.createdAt);
          obj.createdAt = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
        }
        msg = EchoRequest.fromObject(obj);
      } catch {
        res.statusCode = 400;
        res.end('{"code":3,"message":"bad json"}');
        return;
      }
      call('/bench.v1.Echo/Echo', EchoRequest.encode(msg).finish(), (e, b) => reply(res, e, b));
    });
    return;
  }
  res.statusCode = 404;
  res.end('{"code":5,"message":"not found"}');
});
server.listen(Number(env('GATEWAY_PORT')), env('GATEWAY_HOST'));
const stop = (): void => { server.close(); session?.close(); raw?.close(); setTimeout(() => process.exit(0), 100).unref(); };
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
