/**
 * The example gRPC backend behind protogate's quick start: library.v1.LibraryService
 * (protos/library/v1/library.proto) and grpc.health.v1.Health, served by @grpc/grpc-js from an in-memory store.
 *
 * The store is seeded with fixed data (names, timestamps, ratings) so that the README's curl outputs are
 * reproducible; only what a request creates or changes carries the current time.
 *
 * Errors follow AIP-193: the status code says what went wrong, and `grpc-status-details-bin` carries a
 * google.rpc.Status whose details say where: ResourceInfo for NOT_FOUND and ALREADY_EXISTS, BadRequest (one
 * FieldViolation per bad field) for INVALID_ARGUMENT, PreconditionFailure for FAILED_PRECONDITION.
 *
 *   node --import tsx examples/library-backend.ts [--port 50151]     (or PORT=50151)
 */
import path from 'node:path';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import pb from 'protobufjs';

export interface LibraryBackendOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** The clock stamped on created and updated books and on loans. Default: the real one. */
  now?: () => Date;
  /** One line per finished RPC and per cancelled stream. Default: silent. */
  log?: (line: string) => void;
}

export interface LibraryBackend {
  /** The port actually bound. */
  port: number;
  /** Stops accepting calls, waits up to 2 s for running ones, then cancels what is left. */
  close(): Promise<void>;
}

export const DEFAULT_PORT = 50151;

const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GOOGLE_PROTOS_DIR = path.dirname(createRequire(import.meta.url).resolve('google-proto-files/package.json'));
const LIBRARY_SERVICE = 'library.v1.LibraryService';
const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** The library and health protos as @grpc/proto-loader sees them (the example's clients load the same). */
export const packageDefinition = protoLoader.loadSync(['library/v1/library.proto', 'grpc/health/v1/health.proto'], {
  includeDirs: [path.join(REPO_DIR, 'protos'), GOOGLE_PROTOS_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});

// ---------------------------------------------------------------------------------------------------------------
// Messages as proto-loader presents them (keepCase, int64 as strings, enums as names, oneof case in `format`).

interface Timestamp {
  seconds?: string;
  nanos?: number;
}
type Duration = Timestamp;

interface Shelf {
  name?: string;
  display_name?: string;
  genre?: string;
  book_count?: string;
  create_time?: Timestamp;
}

interface Book {
  name?: string;
  title?: string;
  authors?: string[];
  genre?: string;
  state?: string;
  publish_time?: Timestamp;
  rating?: { value?: number };
  loan_period?: Duration;
  labels?: Record<string, string>;
  print?: { page_count?: number; binding?: string };
  ebook?: { size_bytes?: string; file_format?: string };
  format?: 'print' | 'ebook';
  cover_thumbnail?: Uint8Array;
  create_time?: Timestamp;
  update_time?: Timestamp;
}
type BookField = Exclude<keyof Book, 'format'>;

interface Loan {
  book: string;
  borrower: string;
  checkout_time: Timestamp;
  due_time: Timestamp;
}

interface FieldMask {
  paths?: string[];
}

interface ListShelvesRequest { page_size?: number; page_token?: string }
interface GetRequest { name?: string }
interface ListBooksRequest {
  parent?: string; page_size?: number; page_token?: string; filter?: string; genre?: string; read_mask?: FieldMask;
}
interface CreateBookRequest { parent?: string; book_id?: string; book?: Book }
interface UpdateBookRequest { book?: Book; update_mask?: FieldMask }
interface CheckoutBookRequest { name?: string; borrower?: string; loan_period?: Duration }
interface StreamBooksRequest { parent?: string; limit?: number; interval?: Duration }

// ---------------------------------------------------------------------------------------------------------------
// Seed data. Fixed on purpose: the README shows these values.

function ts(iso: string): Timestamp {
  const ms = Date.parse(iso);
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1e6;
  return nanos ? { seconds: String(seconds), nanos } : { seconds: String(seconds) };
}
const days = (n: number): Duration => ({ seconds: String(n * 86400) });

/** 89 50 4E 47 0D 0A 1A 0A: the PNG signature, standing in for a thumbnail ("iVBORw0KGgo=" in JSON). */
const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function seedShelves(): Shelf[] {
  return [
    { name: 'shelves/fiction', display_name: 'Fiction', genre: 'FICTION', create_time: ts('2024-01-15T09:00:00Z') },
    { name: 'shelves/history', display_name: 'History', genre: 'HISTORY', create_time: ts('2024-01-15T09:05:00Z') },
    { name: 'shelves/poetry', display_name: 'Poetry', genre: 'POETRY', create_time: ts('2024-03-01T12:00:00Z') },
  ];
}

function seedBooks(): Book[] {
  return [
    {
      name: 'shelves/fiction/books/dune',
      title: 'Dune',
      authors: ['Frank Herbert'],
      genre: 'SCIENCE_FICTION',
      state: 'AVAILABLE',
      publish_time: ts('1965-08-01T00:00:00Z'),
      rating: { value: 5 },
      loan_period: days(21),
      labels: { series: 'dune', language: 'en' },
      print: { page_count: 896, binding: 'paperback' },
      format: 'print',
      cover_thumbnail: PNG_SIGNATURE,
      create_time: ts('2024-01-15T09:10:00Z'),
      update_time: ts('2024-02-01T16:45:30.500Z'),
    },
    {
      name: 'shelves/fiction/books/earthsea',
      title: 'A Wizard of Earthsea',
      authors: ['Ursula K. Le Guin'],
      genre: 'FANTASY',
      state: 'AVAILABLE',
      publish_time: ts('1968-11-01T00:00:00Z'),
      print: { page_count: 183, binding: 'hardcover' },
      format: 'print',
      create_time: ts('2024-01-15T09:20:00Z'),
      update_time: ts('2024-01-15T09:20:00Z'),
    },
    {
      name: 'shelves/fiction/books/good-omens',
      title: 'Good Omens',
      authors: ['Terry Pratchett', 'Neil Gaiman'],
      genre: 'FANTASY',
      state: 'AVAILABLE',
      publish_time: ts('1990-05-01T00:00:00Z'),
      rating: { value: 4 },
      print: { page_count: 288, binding: 'paperback' },
      format: 'print',
      create_time: ts('2024-01-15T09:25:00Z'),
      update_time: ts('2024-01-15T09:25:00Z'),
    },
    {
      name: 'shelves/fiction/books/neuromancer',
      title: 'Neuromancer',
      authors: ['William Gibson'],
      genre: 'SCIENCE_FICTION',
      state: 'CHECKED_OUT',
      publish_time: ts('1984-07-01T00:00:00Z'),
      rating: { value: 4 },
      labels: { award: 'hugo' },
      ebook: { size_bytes: '2483712', file_format: 'EPUB' },
      format: 'ebook',
      create_time: ts('2024-01-16T10:00:00Z'),
      update_time: ts('2024-03-01T10:00:00Z'),
    },
    {
      name: 'shelves/history/books/spqr',
      title: 'SPQR: A History of Ancient Rome',
      authors: ['Mary Beard'],
      genre: 'HISTORY',
      state: 'AVAILABLE',
      publish_time: ts('2015-10-20T00:00:00Z'),
      rating: { value: 4 },
      print: { page_count: 608, binding: 'hardcover' },
      format: 'print',
      create_time: ts('2024-01-15T09:30:00Z'),
      update_time: ts('2024-01-15T09:30:00Z'),
    },
  ];
}

function seedLoans(): Loan[] {
  return [
    {
      book: 'shelves/fiction/books/neuromancer',
      borrower: 'ada@example.com',
      checkout_time: ts('2024-03-01T10:00:00Z'),
      due_time: ts('2024-03-15T10:00:00Z'),
    },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Errors with google.rpc.Status details.

const statusTypes = (() => {
  const root = new pb.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(GOOGLE_PROTOS_DIR, target));
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return {
    Status: root.lookupType('google.rpc.Status'),
    BadRequest: root.lookupType('google.rpc.BadRequest'),
    ResourceInfo: root.lookupType('google.rpc.ResourceInfo'),
    PreconditionFailure: root.lookupType('google.rpc.PreconditionFailure'),
  };
})();

type Detail =
  | { type: 'BadRequest'; value: { field_violations: { field: string; description: string }[] } }
  | { type: 'ResourceInfo'; value: { resource_type: string; resource_name: string; description: string } }
  | { type: 'PreconditionFailure'; value: { violations: { type: string; subject: string; description: string }[] } };

class RpcError extends Error {
  readonly code: grpc.status;
  readonly details: Detail[];

  constructor(code: grpc.status, message: string, details: Detail[] = []) {
    super(message);
    this.code = code;
    this.details = details;
  }

  /** What grpc-js sends: the code, the message, and the google.rpc.Status in grpc-status-details-bin. */
  toServiceError(): grpc.ServerErrorResponse {
    const { Status } = statusTypes;
    const status = Status.create({
      code: this.code,
      message: this.message,
      details: this.details.map((d) => {
        const type = statusTypes[d.type];
        return { type_url: `type.googleapis.com/google.rpc.${d.type}`, value: type.encode(type.fromObject(d.value)).finish() };
      }),
    });
    const metadata = new grpc.Metadata();
    metadata.set('grpc-status-details-bin', Buffer.from(Status.encode(status).finish()));
    return Object.assign(new Error(this.message), { code: this.code, details: this.message, metadata });
  }
}

const RESOURCE_TYPES = { shelf: 'library.example.com/Shelf', book: 'library.example.com/Book' } as const;

function badRequest(violations: { field: string; description: string }[]): RpcError {
  const summary = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
  return new RpcError(grpc.status.INVALID_ARGUMENT, `invalid request: ${summary}`, [
    { type: 'BadRequest', value: { field_violations: violations } },
  ]);
}

function invalid(field: string, description: string): RpcError {
  return badRequest([{ field, description }]);
}

function notFound(kind: keyof typeof RESOURCE_TYPES, name: string): RpcError {
  return new RpcError(grpc.status.NOT_FOUND, `${kind} ${name} not found`, [
    {
      type: 'ResourceInfo',
      value: { resource_type: RESOURCE_TYPES[kind], resource_name: name, description: `no ${kind} is named ${name}` },
    },
  ]);
}

/** Collects field violations; `throwIfAny` raises one INVALID_ARGUMENT naming all of them. */
class Violations {
  readonly #list: { field: string; description: string }[] = [];

  add(field: string, description: string): void {
    this.#list.push({ field, description });
  }

  throwIfAny(): void {
    if (this.#list.length > 0) throw badRequest(this.#list);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Names, paging, filters, masks.

const SHELF_NAME = /^shelves\/([a-z][a-z0-9-]{0,62})$/;
const BOOK_NAME = /^shelves\/([a-z][a-z0-9-]{0,62})\/books\/([a-z][a-z0-9-]{0,62})$/;
const ID = /^[a-z][a-z0-9-]{0,62}$/;

function checkName(field: string, value: string | undefined, pattern: RegExp, shape: string): string {
  if (!value) throw invalid(field, `required, e.g. ${shape}`);
  if (!pattern.test(value)) throw invalid(field, `must look like ${shape}`);
  return value;
}

function pageSize(requested: number | undefined): number {
  if (requested === undefined || requested === 0) return 10;
  if (requested < 0) throw invalid('page_size', 'must not be negative');
  return Math.min(requested, 100);
}

/** A page token is the base64url of the last name returned; the next page starts after it. */
function afterToken(token: string | undefined, prefix: string): string | undefined {
  if (!token) return undefined;
  const last = Buffer.from(token, 'base64url').toString('utf8');
  if (!last.startsWith(prefix) || Buffer.from(last).toString('base64url') !== token) {
    throw invalid('page_token', 'not a token this list returned');
  }
  return last;
}

function paginate<T extends { name?: string }>(sorted: T[], size: number, after: string | undefined) {
  const start = after === undefined ? 0 : sorted.findIndex((x) => (x.name ?? '') > after);
  const items = start < 0 ? [] : sorted.slice(start, start + size);
  const more = start >= 0 && start + size < sorted.length;
  const next = more ? Buffer.from(items[items.length - 1]!.name ?? '').toString('base64url') : undefined;
  return { items, next };
}

/**
 * An AIP-160 subset, compiled once per request into a predicate.
 *   filter = term { "AND" term }
 *   term   = field op value
 *   field  = "title" | "author" | "rating" | "state"
 *   op     = ":" (contains, case-insensitive) | "=" | "!=" | "<" | "<=" | ">" | ">="
 *   value  = '"' { any character but '"' } '"' | a word without spaces
 */
function compileFilter(filter: string | undefined): (b: Book) => boolean {
  if (!filter || !filter.trim()) return () => true;
  const tests = filter.trim().split(/\s+AND\s+/).map((term): ((b: Book) => boolean) => {
    const m = /^(\w+)\s*(<=|>=|!=|=|:|<|>)\s*(?:"([^"]*)"|(\S+))$/.exec(term);
    if (!m) throw invalid('filter', `cannot parse "${term}"; expected e.g. author:"Herbert" AND rating >= 4`);
    const [, field, op, quoted, bare] = m as unknown as [string, string, string, string | undefined, string | undefined];
    const value = quoted ?? bare ?? '';
    if (field !== 'rating' && op !== ':' && op !== '=' && op !== '!=') {
      throw invalid('filter', `${field} supports :, = and !=, not ${op}`);
    }
    const text = (s: string): boolean =>
      op === ':' ? s.toLowerCase().includes(value.toLowerCase()) : op === '=' ? s === value : s !== value;
    switch (field) {
      case 'title':
        return (b) => text(b.title ?? '');
      case 'author':
        return op === '!=' ? (b) => (b.authors ?? []).every(text) : (b) => (b.authors ?? []).some(text);
      case 'state':
        return (b) => text(b.state ?? 'STATE_UNSPECIFIED');
      case 'rating': {
        const n = Number(value);
        if (!Number.isInteger(n) || op === ':') throw invalid('filter', `rating compares with an integer: ${term}`);
        const cmp: Record<string, (r: number) => boolean> = {
          '=': (r) => r === n, '!=': (r) => r !== n, '<': (r) => r < n, '<=': (r) => r <= n, '>': (r) => r > n, '>=': (r) => r >= n,
        };
        const test = cmp[op]!;
        return (b) => b.rating !== undefined && test(b.rating.value ?? 0);
      }
      default:
        throw invalid('filter', `unknown field "${field}"; use title, author, rating or state`);
    }
  });
  return (b) => tests.every((t) => t(b));
}

const BOOK_FIELDS: readonly BookField[] = [
  'name', 'title', 'authors', 'genre', 'state', 'publish_time', 'rating', 'loan_period', 'labels', 'print', 'ebook',
  'cover_thumbnail', 'create_time', 'update_time',
];
const OUTPUT_ONLY: ReadonlySet<BookField> = new Set(['name', 'state', 'create_time', 'update_time']);
const isBookField = (p: string): p is BookField => (BOOK_FIELDS as readonly string[]).includes(p);

/** Top-level paths only; "*" means every field. */
function maskFields(field: string, mask: FieldMask | undefined): BookField[] | undefined {
  const paths = mask?.paths ?? [];
  if (paths.length === 0) return undefined;
  if (paths.length === 1 && paths[0] === '*') return [...BOOK_FIELDS];
  const v = new Violations();
  for (const p of paths) if (!isBookField(p)) v.add(field, `unknown field path "${p}"; paths name fields of Book, e.g. title`);
  v.throwIfAny();
  return paths as BookField[];
}

function pick(book: Book, fields: BookField[] | undefined): Book {
  if (!fields) return book;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (book[f] !== undefined) out[f] = book[f];
  return out as Book;
}

function copyBook(b: Book): Book {
  return { ...b, authors: b.authors && [...b.authors], labels: b.labels && { ...b.labels } };
}

function checkBookFields(v: Violations, prefix: string, b: Book): void {
  const r = b.rating?.value ?? 0;
  if (b.rating !== undefined && (r < 1 || r > 5)) v.add(`${prefix}.rating`, 'must be 1 to 5 stars, or unset');
  if (b.print && (b.print.page_count ?? 0) < 0) v.add(`${prefix}.print.page_count`, 'must not be negative');
  if (b.loan_period && Number(b.loan_period.seconds ?? 0) <= 0) v.add(`${prefix}.loan_period`, 'must be positive');
}

const toMs = (d: Duration | undefined): number => Number(d?.seconds ?? 0) * 1000 + (d?.nanos ?? 0) / 1e6;
const fromDate = (d: Date): Timestamp => ts(d.toISOString());
const DEFAULT_LOAN_DAYS = 14;
const MAX_LOAN_MS = 90 * 86400 * 1000;
const MAX_STREAM_LIMIT = 1000;
const MAX_STREAM_INTERVAL_MS = 10_000;

// ---------------------------------------------------------------------------------------------------------------
// The store and the service.

class Library {
  readonly #shelves = new Map<string, Shelf>();
  readonly #books = new Map<string, Book>();
  readonly #loans = new Map<string, Loan>();
  readonly #now: () => Date;

  constructor(now: () => Date) {
    this.#now = now;
    for (const s of seedShelves()) this.#shelves.set(s.name!, s);
    for (const b of seedBooks()) this.#books.set(b.name!, b);
    for (const l of seedLoans()) this.#loans.set(l.book, l);
  }

  listShelves(req: ListShelvesRequest) {
    const size = pageSize(req.page_size);
    const all = [...this.#shelves.values()].sort(byName).map((s) => this.#withCount(s));
    const { items, next } = paginate(all, size, afterToken(req.page_token, 'shelves/'));
    return { shelves: items, next_page_token: next };
  }

  getShelf(req: GetRequest): Shelf {
    const name = checkName('name', req.name, SHELF_NAME, 'shelves/fiction');
    return this.#withCount(this.#shelf(name));
  }

  listBooks(req: ListBooksRequest) {
    const parent = req.parent === 'shelves/-' ? req.parent : checkName('parent', req.parent, SHELF_NAME, 'shelves/fiction');
    if (parent !== 'shelves/-') this.#shelf(parent);
    const size = pageSize(req.page_size);
    const test = compileFilter(req.filter);
    const fields = maskFields('read_mask', req.read_mask);
    const genre = req.genre && req.genre !== 'GENRE_UNSPECIFIED' ? req.genre : undefined;
    const matching = [...this.#books.values()]
      .filter((b) => parent === 'shelves/-' || b.name!.startsWith(`${parent}/books/`))
      .filter((b) => (genre === undefined || b.genre === genre) && test(b))
      .sort(byName);
    const { items, next } = paginate(matching, size, afterToken(req.page_token, 'shelves/'));
    return { books: items.map((b) => pick(b, fields)), next_page_token: next, total_size: matching.length };
  }

  getBook(req: GetRequest): Book {
    return this.#book(checkName('name', req.name, BOOK_NAME, 'shelves/fiction/books/dune'));
  }

  createBook(req: CreateBookRequest): Book {
    const v = new Violations();
    if (!req.parent) v.add('parent', 'required, e.g. shelves/fiction');
    else if (!SHELF_NAME.test(req.parent)) v.add('parent', 'must look like shelves/fiction');
    if (!req.book_id) v.add('book_id', 'required: the last part of the new book\'s name, e.g. "dune"');
    else if (!ID.test(req.book_id)) v.add('book_id', 'must be 1-63 lower-case letters, digits or hyphens, starting with a letter');
    const book = req.book;
    if (!book) v.add('book', 'required');
    else {
      if (!book.title?.trim()) v.add('book.title', 'required');
      checkBookFields(v, 'book', book);
    }
    v.throwIfAny();
    const parent = this.#shelf(req.parent!).name!;
    const name = `${parent}/books/${req.book_id}`;
    if (this.#books.has(name)) {
      throw new RpcError(grpc.status.ALREADY_EXISTS, `book ${name} already exists`, [
        { type: 'ResourceInfo', value: { resource_type: RESOURCE_TYPES.book, resource_name: name, description: 'choose another book_id' } },
      ]);
    }
    const now = fromDate(this.#now());
    const created: Book = { ...copyBook(book!), name, state: 'AVAILABLE', create_time: now, update_time: now };
    this.#books.set(name, created);
    return created;
  }

  updateBook(req: UpdateBookRequest): Book {
    if (!req.book) throw invalid('book', 'required');
    const name = checkName('book.name', req.book.name, BOOK_NAME, 'shelves/fiction/books/dune');
    const current = this.#book(name);
    const fields = maskFields('update_mask', req.update_mask)
      ?? BOOK_FIELDS.filter((f) => req.book![f] !== undefined); // AIP-134: no mask updates the fields given
    const v = new Violations();
    checkBookFields(v, 'book', req.book);
    if (fields.includes('title') && !req.book.title?.trim()) v.add('book.title', 'must not be cleared');
    v.throwIfAny();
    const next = copyBook(current);
    for (const f of fields) {
      if (OUTPUT_ONLY.has(f)) continue;
      const value = req.book[f];
      if (value === undefined) delete next[f];
      else (next as Record<string, unknown>)[f] = value;
      if ((f === 'print' || f === 'ebook') && value !== undefined) {
        delete next[f === 'print' ? 'ebook' : 'print'];
        next.format = f;
      }
    }
    if (next.format && next[next.format] === undefined) delete next.format;
    next.update_time = fromDate(this.#now());
    this.#books.set(name, next);
    return next;
  }

  deleteBook(req: GetRequest): Record<string, never> {
    const name = this.getBook(req).name!;
    this.#books.delete(name);
    this.#loans.delete(name);
    return {};
  }

  checkoutBook(req: CheckoutBookRequest) {
    const v = new Violations();
    if (!req.borrower?.trim()) v.add('borrower', 'required');
    const period = req.loan_period ? toMs(req.loan_period) : undefined;
    if (period !== undefined && (period <= 0 || period > MAX_LOAN_MS)) v.add('loan_period', 'must be more than 0s and at most 90 days');
    v.throwIfAny();
    const book = this.getBook(req);
    const existing = this.#loans.get(book.name!);
    if (book.state === 'CHECKED_OUT' && existing) {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `book ${book.name} is checked out`, [
        {
          type: 'PreconditionFailure',
          value: { violations: [{ type: 'STATE', subject: book.name!, description: 'the book is checked out; return it first' }] },
        },
      ]);
    }
    const now = this.#now();
    const ms = period ?? (book.loan_period ? toMs(book.loan_period) : DEFAULT_LOAN_DAYS * 86400 * 1000);
    const loan: Loan = {
      book: book.name!,
      borrower: req.borrower!,
      checkout_time: fromDate(now),
      due_time: fromDate(new Date(now.getTime() + ms)),
    };
    const updated: Book = { ...copyBook(book), state: 'CHECKED_OUT', update_time: loan.checkout_time };
    this.#books.set(book.name!, updated);
    this.#loans.set(book.name!, loan);
    return { loan, book: updated };
  }

  /** Validates a StreamBooks request; the names to send, in order (the books are read again when sent). */
  streamPlan(req: StreamBooksRequest): { names: string[]; intervalMs: number } {
    const parent = checkName('parent', req.parent, SHELF_NAME, 'shelves/fiction');
    const v = new Violations();
    const limit = req.limit ?? 0;
    if (limit < 0 || limit > MAX_STREAM_LIMIT) v.add('limit', `must be 0 to ${MAX_STREAM_LIMIT}`);
    const intervalMs = toMs(req.interval);
    if (intervalMs < 0 || intervalMs > MAX_STREAM_INTERVAL_MS) v.add('interval', 'must be 0s to 10s');
    v.throwIfAny();
    this.#shelf(parent);
    const shelfBooks = [...this.#books.values()].filter((b) => b.name!.startsWith(`${parent}/books/`)).sort(byName);
    const count = shelfBooks.length === 0 ? 0 : limit || shelfBooks.length;
    const names = Array.from({ length: count }, (_, i) => shelfBooks[i % shelfBooks.length]!.name!);
    return { names, intervalMs };
  }

  /** A book as it is now, or undefined if it was deleted meanwhile. */
  peek(name: string): Book | undefined {
    return this.#books.get(name);
  }

  #shelf(name: string): Shelf {
    const s = this.#shelves.get(name);
    if (!s) throw notFound('shelf', name);
    return s;
  }

  #book(name: string): Book {
    const b = this.#books.get(name);
    if (!b) throw notFound('book', name);
    return b;
  }

  #withCount(s: Shelf): Shelf {
    let n = 0;
    for (const name of this.#books.keys()) if (name.startsWith(`${s.name}/books/`)) n++;
    return { ...s, book_count: String(n) };
  }
}

const byName = (a: { name?: string }, b: { name?: string }): number => ((a.name ?? '') < (b.name ?? '') ? -1 : 1);

type Log = (line: string) => void;

/** Adapts a synchronous handler: its result or RpcError goes to the callback, and one log line is written. */
function unary<Req, Res>(method: string, log: Log, handler: (req: Req) => Res): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const target = describe(call.request);
    try {
      const res = handler(call.request);
      log(`${method} ${target} -> OK`);
      callback(null, res);
    } catch (err) {
      const rpc = err instanceof RpcError ? err : new RpcError(grpc.status.INTERNAL, 'internal error');
      log(`${method} ${target} -> ${grpc.status[rpc.code]}${rpc === err ? '' : ` (${String(err)})`}`);
      callback(rpc.toServiceError());
    }
  };
}

function describe(req: unknown): string {
  const r = req as { name?: string; parent?: string; book?: { name?: string } };
  return r.name ?? r.parent ?? r.book?.name ?? '(all)';
}

function streamBooks(library: Library, log: Log): grpc.handleServerStreamingCall<StreamBooksRequest, Book> {
  return async (call) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    const parent = call.request.parent ?? '';
    let sent = 0;
    try {
      const { names, intervalMs } = library.streamPlan(call.request);
      for (const name of names) {
        if (sent > 0 && intervalMs > 0) await sleep(intervalMs, undefined, { signal: abort.signal });
        if (abort.signal.aborted) break;
        const book = library.peek(name);
        if (!book) continue;
        sent++;
        // Backpressure: a full buffer means the client (or the gateway) is not reading; wait instead of queueing.
        if (!call.write(book)) await once(call, 'drain', { signal: abort.signal });
      }
    } catch (err) {
      if (abort.signal.aborted) {
        // Cancelled mid-pause or mid-drain: nothing more to send, and nobody to send a status to.
      } else {
        const rpc = err instanceof RpcError ? err : new RpcError(grpc.status.INTERNAL, 'internal error');
        log(`StreamBooks ${parent} -> ${grpc.status[rpc.code]}`);
        call.emit('error', rpc.toServiceError());
        return;
      }
    }
    if (abort.signal.aborted) {
      log(`StreamBooks ${parent} -> CANCELLED after ${sent} books`);
      return;
    }
    log(`StreamBooks ${parent} -> OK, ${sent} books`);
    call.end();
  };
}

type HealthRequest = { service?: string };
type HealthResponse = { status: 'SERVING' | 'SERVICE_UNKNOWN' };

/** grpc.health.v1.Health: this process serves the library for as long as it runs. */
function healthService(): grpc.UntypedServiceImplementation {
  const known = (service: string | undefined): boolean =>
    !service || service === LIBRARY_SERVICE || service === HEALTH_SERVICE;
  const check: grpc.handleUnaryCall<HealthRequest, HealthResponse> = (call, callback) => {
    if (known(call.request.service)) return callback(null, { status: 'SERVING' });
    callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
  };
  const watch: grpc.handleServerStreamingCall<HealthRequest, HealthResponse> = (call) => {
    call.write({ status: known(call.request.service) ? 'SERVING' : 'SERVICE_UNKNOWN' });
    // The status never changes, so the stream stays open until the client cancels or the server shuts down.
  };
  return { Check: check, Watch: watch } as grpc.UntypedServiceImplementation;
}

export async function startLibraryBackend(opts: LibraryBackendOptions = {}): Promise<LibraryBackend> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log ?? (() => {});
  const library = new Library(opts.now ?? (() => new Date()));
  const server = new grpc.Server();
  server.addService(packageDefinition[LIBRARY_SERVICE] as grpc.ServiceDefinition, {
    ListShelves: unary('ListShelves', log, (req: ListShelvesRequest) => library.listShelves(req)),
    GetShelf: unary('GetShelf', log, (req: GetRequest) => library.getShelf(req)),
    ListBooks: unary('ListBooks', log, (req: ListBooksRequest) => library.listBooks(req)),
    GetBook: unary('GetBook', log, (req: GetRequest) => library.getBook(req)),
    CreateBook: unary('CreateBook', log, (req: CreateBookRequest) => library.createBook(req)),
    UpdateBook: unary('UpdateBook', log, (req: UpdateBookRequest) => library.updateBook(req)),
    DeleteBook: unary('DeleteBook', log, (req: GetRequest) => library.deleteBook(req)),
    CheckoutBook: unary('CheckoutBook', log, (req: CheckoutBookRequest) => library.checkoutBook(req)),
    StreamBooks: streamBooks(library, log),
  } as grpc.UntypedServiceImplementation);
  server.addService(packageDefinition[HEALTH_SERVICE] as grpc.ServiceDefinition, healthService());

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const force = setTimeout(() => server.forceShutdown(), 2000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return closing;
  };
  return { port, close };
}

function parsePort(argv: string[], env: NodeJS.ProcessEnv): number {
  const i = argv.indexOf('--port');
  const raw = i >= 0 ? argv[i + 1] : env['PORT'];
  if (raw === undefined) return DEFAULT_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`library backend: port must be an integer 0-65535, got "${raw}"`);
  }
  return port;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const backend = await startLibraryBackend({
    port: parsePort(process.argv.slice(2), process.env),
    log: (line) => console.log(`[library] ${line}`),
  });
  console.log(`library backend (${LIBRARY_SERVICE}, ${HEALTH_SERVICE}) listening on 127.0.0.1:${backend.port}`);
  const stop = (): void => {
    void backend.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
