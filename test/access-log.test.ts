import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessLogLine, requestId, type AccessLogInput } from '../src/observability/access-log.ts';
import { Code } from '../src/errors/index.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const base: AccessLogInput = {
  method: 'GET',
  route: '/v1/{name=shelves/*/books/*}',
  grpcMethod: 'library.v1.LibraryService/GetBook',
  status: 404,
  grpcCode: Code.NOT_FOUND,
  durationMs: 1.23456789,
  reqBytes: 0,
  resBytes: 57,
  requestId: 'req-1',
  remoteAddress: '10.1.2.3',
  headers: {
    'user-agent': 'curl/8.5.0',
    authorization: 'Bearer secret-token',
    cookie: 'session=secret-cookie',
    'x-api-key': 'secret-key',
  },
};

test('builds exactly the documented fields, with the route template and the code name', () => {
  assert.deepEqual(accessLogLine(base), {
    method: 'GET',
    route: '/v1/{name=shelves/*/books/*}',
    grpcMethod: 'library.v1.LibraryService/GetBook',
    status: 404,
    grpcCode: 'NOT_FOUND',
    durationMs: 1.235,
    reqBytes: 0,
    resBytes: 57,
    requestId: 'req-1',
    remoteAddress: '10.1.2.3',
    userAgent: 'curl/8.5.0',
  });
});

test('never carries Authorization, Cookie or any other header value', () => {
  const text = JSON.stringify(accessLogLine(base));
  for (const secret of ['secret-token', 'secret-cookie', 'secret-key', 'Bearer']) assert.ok(!text.includes(secret), secret);
});

test('never carries a body, whatever extra properties the caller passes', () => {
  const sneaky = { ...base, body: { password: 'hunter2' }, rawBody: 'hunter2', url: '/v1/shelves/1/books/2?token=x' };
  const line = accessLogLine(sneaky as AccessLogInput);
  assert.ok(!JSON.stringify(line).includes('hunter2'));
  assert.ok(!JSON.stringify(line).includes('token=x'));
  assert.deepEqual(Object.keys(line).sort(), [
    'durationMs', 'grpcCode', 'grpcMethod', 'method', 'remoteAddress', 'reqBytes', 'requestId', 'resBytes', 'route', 'status', 'userAgent',
  ]);
});

const lines: Array<[string, Partial<AccessLogInput>, Partial<ReturnType<typeof accessLogLine>>]> = [
  ['an unmatched request has null route and method', { route: undefined, grpcMethod: undefined }, { route: null, grpcMethod: null }],
  ['no remote address gives null', { remoteAddress: undefined }, { remoteAddress: null }],
  ['no user agent gives null', { headers: {} }, { userAgent: null }],
  ['an empty user agent gives null', { headers: { 'user-agent': '' } }, { userAgent: null }],
  ['a very long user agent is cut at 256 chars', { headers: { 'user-agent': 'x'.repeat(5000) } }, { userAgent: 'x'.repeat(256) }],
  ['an out-of-range code is UNKNOWN', { grpcCode: 42 }, { grpcCode: 'UNKNOWN' }],
  ['OK', { grpcCode: Code.OK, status: 200 }, { grpcCode: 'OK', status: 200 }],
  ['a sub-microsecond duration rounds', { durationMs: 0.0004 }, { durationMs: 0 }],
];
for (const [name, input, expected] of lines) {
  test(`access line: ${name}`, () => {
    const line = accessLogLine({ ...base, ...input });
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(line[k as keyof typeof line], v, k);
  });
}

const kept: Array<[string, string]> = [
  ['a UUID', '0f8fad5b-d9cb-469f-a165-70867728950e'],
  ['letters, digits, dot, underscore, dash', 'Req_01.abc-XYZ'],
  ['a single character', 'a'],
  ['exactly 128 characters', 'a'.repeat(128)],
];
for (const [name, id] of kept) {
  test(`requestId keeps a sane X-Request-Id: ${name}`, () => {
    assert.equal(requestId({ 'x-request-id': id }), id);
  });
}

const replaced: Array<[string, string | string[] | undefined]> = [
  ['absent', undefined],
  ['empty', ''],
  ['129 characters', 'a'.repeat(129)],
  ['a space', 'abc def'],
  ['a newline (log injection)', 'abc\nlevel=error'],
  ['a quote', 'abc"def'],
  ['a slash', '../../etc'],
  ['non-ASCII', 'idé'],
  ['a comma-joined repeat', 'a, b'],
  ['a repeated header', ['a', 'b']],
];
for (const [name, id] of replaced) {
  test(`requestId makes a fresh UUID when X-Request-Id is ${name}`, () => {
    const got = requestId(id === undefined ? {} : { 'x-request-id': id });
    assert.match(got, UUID);
  });
}

test('requestId makes a different id each time', () => {
  const ids = new Set(Array.from({ length: 100 }, () => requestId({})));
  assert.equal(ids.size, 100);
});
