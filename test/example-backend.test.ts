/**
 * The bundled example backend (examples/library-backend.ts), called with a plain @grpc/grpc-js client: the
 * quick start only works if the backend does, whatever the gateway does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import pb from 'protobufjs';
import { packageDefinition, startLibraryBackend } from '../examples/library-backend.ts';

const GOOGLE_PROTOS_DIR = path.dirname(createRequire(import.meta.url).resolve('google-proto-files/package.json'));

const definition = packageDefinition;
const LibraryClient = grpc.makeClientConstructor(definition['library.v1.LibraryService'] as grpc.ServiceDefinition, 'LibraryService');
const HealthClient = grpc.makeClientConstructor(definition['grpc.health.v1.Health'] as grpc.ServiceDefinition, 'Health');

const rpcTypes = (() => {
  const root = new pb.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(GOOGLE_PROTOS_DIR, target));
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
})();

type Obj = Record<string, any>;
type Client = grpc.Client & Record<string, (...args: any[]) => any>;

/** A fresh backend (fresh seed data) and a client for it, both closed when the test ends. */
async function setup(t: import('node:test').TestContext, log?: (line: string) => void) {
  const backend = await startLibraryBackend({
    host: '127.0.0.1',
    port: 0,
    now: () => new Date('2025-06-01T12:00:00Z'),
    ...(log ? { log } : {}),
  });
  const address = `127.0.0.1:${backend.port}`;
  const client = new LibraryClient(address, grpc.credentials.createInsecure()) as unknown as Client;
  const health = new HealthClient(address, grpc.credentials.createInsecure()) as unknown as Client;
  t.after(async () => {
    client.close();
    health.close();
    await backend.close();
  });
  const call = (method: string, req: Obj): Promise<Obj> =>
    new Promise((resolve, reject) => client[method]!(req, (err: grpc.ServiceError | null, res: Obj) => (err ? reject(err) : resolve(res))));
  return { client, health, call };
}

/** The google.rpc.Status in grpc-status-details-bin, with each Any detail decoded to { '@type', ...fields }. */
function statusDetails(err: grpc.ServiceError): { code: number; message: string; details: Obj[] } {
  const [bin] = err.metadata.get('grpc-status-details-bin');
  assert.ok(Buffer.isBuffer(bin), 'grpc-status-details-bin is present');
  const status = rpcTypes.lookupType('google.rpc.Status').decode(bin) as unknown as Obj;
  const details = (status['details'] as Obj[]).map((any) => {
    const typeName = String(any['type_url']).split('/').pop()!;
    const decoded = rpcTypes.lookupType(typeName).decode(any['value']);
    return { '@type': any['type_url'], ...rpcTypes.lookupType(typeName).toObject(decoded) };
  });
  return { code: status['code'], message: status['message'], details };
}

async function rejectsWith(p: Promise<unknown>, code: grpc.status): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    assert.equal(e.code, code, `expected ${grpc.status[code]}, got ${grpc.status[e.code]}: ${e.details}`);
    return e;
  }
  assert.fail(`expected ${grpc.status[code]}, the call succeeded`);
}

test('GetBook returns the seeded book with every field kind', async (t) => {
  const { call } = await setup(t);
  const book = await call('GetBook', { name: 'shelves/fiction/books/dune' });
  assert.equal(book['title'], 'Dune');
  assert.deepEqual(book['authors'], ['Frank Herbert']);
  assert.equal(book['genre'], 'SCIENCE_FICTION');
  assert.equal(book['state'], 'AVAILABLE');
  assert.deepEqual(book['rating'], { value: 5 });
  assert.deepEqual(book['loan_period'], { seconds: '1814400' });
  assert.deepEqual(book['labels'], { series: 'dune', language: 'en' });
  assert.equal(book['format'], 'print');
  assert.deepEqual(book['print'], { page_count: 896, binding: 'paperback' });
  assert.deepEqual([...book['cover_thumbnail']], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.deepEqual(book['publish_time'], { seconds: '-139449600' });
  assert.deepEqual(book['update_time'], { seconds: '1706805930', nanos: 500000000 });

  const ebook = await call('GetBook', { name: 'shelves/fiction/books/neuromancer' });
  assert.equal(ebook['format'], 'ebook');
  assert.deepEqual(ebook['ebook'], { size_bytes: '2483712', file_format: 'EPUB' });
});

test('GetBook of a missing book is NOT_FOUND with a ResourceInfo detail', async (t) => {
  const { call } = await setup(t);
  const err = await rejectsWith(call('GetBook', { name: 'shelves/fiction/books/missing' }), grpc.status.NOT_FOUND);
  assert.equal(err.details, 'book shelves/fiction/books/missing not found');
  assert.deepEqual(statusDetails(err), {
    code: 5,
    message: 'book shelves/fiction/books/missing not found',
    details: [
      {
        '@type': 'type.googleapis.com/google.rpc.ResourceInfo',
        resource_type: 'library.example.com/Book',
        resource_name: 'shelves/fiction/books/missing',
        description: 'no book is named shelves/fiction/books/missing',
      },
    ],
  });
});

test('ListBooks pages by page_token and applies genre, filter and read_mask', async (t) => {
  const { call } = await setup(t);
  const first = await call('ListBooks', { parent: 'shelves/fiction', page_size: 2 });
  assert.deepEqual(first['books'].map((b: Obj) => b['name']), ['shelves/fiction/books/dune', 'shelves/fiction/books/earthsea']);
  assert.equal(first['total_size'], 4);
  const second = await call('ListBooks', { parent: 'shelves/fiction', page_size: 2, page_token: first['next_page_token'] });
  assert.deepEqual(second['books'].map((b: Obj) => b['name']), ['shelves/fiction/books/good-omens', 'shelves/fiction/books/neuromancer']);
  assert.equal(second['next_page_token'], undefined);

  const masked = await call('ListBooks', {
    parent: 'shelves/-',
    genre: 'SCIENCE_FICTION',
    filter: 'rating >= 5',
    read_mask: { paths: ['name', 'title', 'rating'] },
  });
  assert.deepEqual(masked['books'], [{ name: 'shelves/fiction/books/dune', title: 'Dune', rating: { value: 5 } }]);

  const byAuthor = await call('ListBooks', { parent: 'shelves/-', filter: 'author:"gaiman" AND state = AVAILABLE' });
  assert.deepEqual(byAuthor['books'].map((b: Obj) => b['title']), ['Good Omens']);
});

test('bad input is INVALID_ARGUMENT with one BadRequest field violation per field', async (t) => {
  const { call } = await setup(t);
  const err = await rejectsWith(
    call('CreateBook', { parent: 'shelves/fiction', book_id: 'Bad ID', book: { rating: { value: 9 } } }),
    grpc.status.INVALID_ARGUMENT,
  );
  const { details } = statusDetails(err);
  assert.equal(details[0]!['@type'], 'type.googleapis.com/google.rpc.BadRequest');
  assert.deepEqual(details[0]!['field_violations'].map((v: Obj) => v['field']), ['book_id', 'book.title', 'book.rating']);

  const filterErr = await rejectsWith(call('ListBooks', { parent: 'shelves/fiction', filter: 'pages > 3' }), grpc.status.INVALID_ARGUMENT);
  assert.equal(statusDetails(filterErr).details[0]!['field_violations'][0]['field'], 'filter');
});

test('CreateBook stores the book once; a second create is ALREADY_EXISTS', async (t) => {
  const { call } = await setup(t);
  const req = { parent: 'shelves/poetry', book_id: 'odyssey', book: { title: 'The Odyssey', authors: ['Homer'], genre: 'POETRY' } };
  const created = await call('CreateBook', req);
  assert.equal(created['name'], 'shelves/poetry/books/odyssey');
  assert.equal(created['state'], 'AVAILABLE');
  assert.deepEqual(created['create_time'], { seconds: '1748779200' });
  assert.deepEqual(await call('GetBook', { name: 'shelves/poetry/books/odyssey' }), created);
  assert.equal((await call('GetShelf', { name: 'shelves/poetry' }))['book_count'], '1');
  await rejectsWith(call('CreateBook', req), grpc.status.ALREADY_EXISTS);
});

test('UpdateBook changes only the fields in update_mask; DeleteBook removes the book', async (t) => {
  const { call } = await setup(t);
  const updated = await call('UpdateBook', {
    book: { name: 'shelves/fiction/books/earthsea', title: 'ignored', rating: { value: 5 } },
    update_mask: { paths: ['rating'] },
  });
  assert.equal(updated['title'], 'A Wizard of Earthsea');
  assert.deepEqual(updated['rating'], { value: 5 });
  assert.deepEqual(updated['update_time'], { seconds: '1748779200' });

  assert.deepEqual(await call('DeleteBook', { name: 'shelves/fiction/books/earthsea' }), {});
  await rejectsWith(call('GetBook', { name: 'shelves/fiction/books/earthsea' }), grpc.status.NOT_FOUND);
  await rejectsWith(call('DeleteBook', { name: 'shelves/fiction/books/earthsea' }), grpc.status.NOT_FOUND);
});

test('CheckoutBook lends an available book and refuses a checked-out one', async (t) => {
  const { call } = await setup(t);
  const res = await call('CheckoutBook', { name: 'shelves/fiction/books/dune', borrower: 'grace@example.com' });
  assert.deepEqual(res['loan'], {
    book: 'shelves/fiction/books/dune',
    borrower: 'grace@example.com',
    checkout_time: { seconds: '1748779200' },
    due_time: { seconds: String(1748779200 + 21 * 86400) },
  });
  assert.equal(res['book']['state'], 'CHECKED_OUT');
  const err = await rejectsWith(
    call('CheckoutBook', { name: 'shelves/fiction/books/neuromancer', borrower: 'grace@example.com' }),
    grpc.status.FAILED_PRECONDITION,
  );
  assert.equal(statusDetails(err).details[0]!['@type'], 'type.googleapis.com/google.rpc.PreconditionFailure');
});

test('StreamBooks sends `limit` books, cycling through the shelf', async (t) => {
  const { client } = await setup(t);
  const names: string[] = [];
  const stream = client['StreamBooks']!({ parent: 'shelves/fiction', limit: 6 }) as grpc.ClientReadableStream<Obj>;
  for await (const book of stream) names.push(book['name']);
  assert.deepEqual(names.map((n) => n.split('/').pop()), ['dune', 'earthsea', 'good-omens', 'neuromancer', 'dune', 'earthsea']);
});

test('StreamBooks stops sending when the client cancels', async (t) => {
  const lines: string[] = [];
  const { client } = await setup(t, (line) => lines.push(line));
  const stream = client['StreamBooks']!({
    parent: 'shelves/fiction',
    limit: 1000,
    interval: { nanos: 20_000_000 },
  }) as grpc.ClientReadableStream<Obj>;
  let received = 0;
  const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
  stream.on('data', () => {
    if (++received === 2) stream.cancel();
  });
  const err = await ended;
  assert.equal(err.code, grpc.status.CANCELLED);
  // The server notices within one interval and logs how far it got.
  for (let i = 0; i < 50 && !lines.some((l) => l.includes('CANCELLED')); i++) await new Promise((r) => setTimeout(r, 10));
  const line = lines.find((l) => l.startsWith('StreamBooks'));
  assert.match(line ?? '', /^StreamBooks shelves\/fiction -> CANCELLED after [23] books$/);
});

test('StreamBooks of a missing shelf ends with NOT_FOUND', async (t) => {
  const { client } = await setup(t);
  const stream = client['StreamBooks']!({ parent: 'shelves/missing' }) as grpc.ClientReadableStream<Obj>;
  const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve).on('data', () => {}));
  assert.equal(err.code, grpc.status.NOT_FOUND);
  assert.equal(statusDetails(err).details[0]!['resource_name'], 'shelves/missing');
});

test('grpc.health.v1.Health/Check answers SERVING for the server and the library service', async (t) => {
  const { health } = await setup(t);
  const check = (service: string): Promise<Obj> =>
    new Promise((resolve, reject) => health['Check']!({ service }, (err: Error | null, res: Obj) => (err ? reject(err) : resolve(res))));
  assert.deepEqual(await check(''), { status: 'SERVING' });
  assert.deepEqual(await check('library.v1.LibraryService'), { status: 'SERVING' });
  await rejectsWith(check('no.such.Service'), grpc.status.NOT_FOUND);
});
