/**
 * The docs' curl lines, run for real. README.md and examples/README.md promise that on a fresh `npm start` every
 * documented `curl` command prints the output shown under it. This test holds them to it.
 *
 * For each of the two files, in document order: every ```sh block whose command is `curl ...` (continued over
 * lines with a trailing `\`) is paired with the next fenced block, which must be its output (```json or ```text).
 * Each file gets a fresh example backend (examples/library-backend.ts, fresh seed data, the real clock) and a
 * gateway built from gateway.config.ts, because the examples mutate data in order. Each command runs verbatim
 * through `sh -c` with the real `curl` binary; the one rewrite is `http://127.0.0.1:8080` -> the test gateway's URL.
 * One subtest per command, named after the file, line and command, so a mismatch names the command.
 *
 * Comparison:
 *   ```text  stdout must equal the block exactly (the block's lines, each ending in "\n").
 *   ```json  a block that parses as one JSON value: stdout must be one value as compact JSON (the gateway sends
 *            compact JSON; the doc may pretty-print it), optionally followed by "\n" (a one-message stream),
 *            compared as parsed values (key order and whitespace aside). A block that does not parse as a whole is NDJSON (a server stream): stdout must have as many
 *            "\n"-terminated lines as the block, each compared as a parsed value.
 *
 * Normalised fields (the only difference from the real output that is tolerated): `createTime`, `updateTime`,
 * `checkoutTime` and `dueTime`. CreateBook, UpdateBook and CheckoutBook fill them with the backend's current time
 * (`dueTime` = `checkoutTime` + loan period), so no document can show the real value; the docs show a placeholder
 * instead. Such a field in the response is replaced by the documented value only if
 *   - the documented value is an RFC 3339 timestamp, and
 *   - the response value was written during this run: it lies between the moment this file's backend started and
 *     the end of the command, or, for `dueTime`, the same object's `checkoutTime` qualifies, and
 *   - within one object, the differences between the replaced fields are the documented ones (createTime ==
 *     updateTime on a create, dueTime - checkoutTime == the loan period on a checkout).
 * Seed data timestamps (2024, and anything else not written by this run) are compared exactly.
 *
 * Also: README.md's `npx --no -- protogate routes --config gateway.config.ts` line is run from the repo root and must
 * exit 0 and list the GetBook route.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import exampleConfig from '../gateway.config.ts';
import { startLibraryBackend } from '../examples/library-backend.ts';
import { startGateway } from './helpers/gateway.ts';

const run = promisify(execFile);
const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOC_URL = 'http://127.0.0.1:8080';
const ROUTES_COMMAND = 'npx --no -- protogate routes --config gateway.config.ts';

/** Fields that CreateBook/UpdateBook/CheckoutBook fill with the current time; see the header comment. */
const NOW_FIELDS = new Set(['createTime', 'updateTime', 'checkoutTime', 'dueTime']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

interface Fence {
  lang: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The block's lines joined with "\n", no trailing newline. */
  body: string;
}

interface CurlExample {
  line: number;
  command: string;
  output: Fence;
}

function fences(markdown: string, file: string): Fence[] {
  const lines = markdown.split('\n');
  const out: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    assert.ok(i < lines.length, `${file}:${start + 1}: unclosed code fence`);
    out.push({ lang: open[1]!, line: start + 1, body: body.join('\n') });
  }
  return out;
}

/** The commands of a ```sh block: lines ending in `\` continue on the next line; blank lines and comments skipped. */
function shCommands(body: string): string[] {
  const commands: string[] = [];
  let current = '';
  for (const line of body.split('\n')) {
    current += (current ? '\n' : '') + line;
    if (line.endsWith('\\')) continue;
    if (current.trim() && !current.trim().startsWith('#')) commands.push(current.trim());
    current = '';
  }
  if (current.trim()) commands.push(current.trim());
  return commands;
}

function curlExamples(file: string): CurlExample[] {
  const blocks = fences(readFileSync(path.join(REPO_DIR, file), 'utf8'), file);
  const examples: CurlExample[] = [];
  blocks.forEach((block, i) => {
    if (block.lang !== 'sh') return;
    const commands = shCommands(block.body);
    if (!commands.some((c) => /^curl\s/.test(c))) return;
    assert.equal(commands.length, 1, `${file}:${block.line}: a curl block must hold exactly one command, so that its output is known`);
    const output = blocks[i + 1];
    assert.ok(
      output && (output.lang === 'json' || output.lang === 'text'),
      `${file}:${block.line}: \`${commands[0]}\` must be followed by its output in a \`\`\`json or \`\`\`text block`,
    );
    examples.push({ line: block.line, command: commands[0]!, output });
  });
  return examples;
}

/** One JSON value, or (when the text is not one JSON value) NDJSON: one value per non-empty line. */
function parseDocumentedJson(body: string, where: string): { kind: 'json'; value: unknown } | { kind: 'ndjson'; values: unknown[] } {
  try {
    return { kind: 'json', value: JSON.parse(body) };
  } catch {
    const values = body
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l, n) => {
        try {
          return JSON.parse(l);
        } catch (err) {
          throw new Error(`${where}: documented output is neither JSON nor NDJSON (line ${n + 1}: ${(err as Error).message})`);
        }
      });
    return { kind: 'ndjson', values };
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Replaces, in `actual`, the time fields written during this run by the documented placeholders (rules in the
 * header comment). Walks `actual` and `expected` side by side; where their shapes differ, nothing is replaced and
 * the comparison reports the difference.
 */
function normaliseTimes(actual: Json, expected: unknown, window: { from: number; to: number }): Json {
  if (Array.isArray(actual)) {
    return actual.map((v, i) => normaliseTimes(v, Array.isArray(expected) ? expected[i] : undefined, window));
  }
  if (!isObject(actual)) return actual;
  const exp = isObject(expected) ? expected : {};
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(actual)) out[k] = NOW_FIELDS.has(k) ? v : normaliseTimes(v, exp[k], window);

  const ms = (v: unknown): number | undefined => (typeof v === 'string' && RFC3339.test(v) ? Date.parse(v) : undefined);
  const written = (k: string): boolean => {
    const t = ms(actual[k]);
    return t !== undefined && ms(exp[k]) !== undefined && t >= window.from && t <= window.to;
  };
  const replaced = [...NOW_FIELDS].filter(
    (k) => written(k) || (k === 'dueTime' && written('checkoutTime') && ms(actual[k]) !== undefined && ms(exp[k]) !== undefined),
  );
  for (const a of replaced) {
    for (const b of replaced) {
      if (ms(actual[b])! - ms(actual[a])! !== ms(exp[b])! - ms(exp[a])!) return out; // a relation differs: keep real values
    }
  }
  for (const k of replaced) out[k] = exp[k] as Json;
  return out;
}

/** Fresh backend + gateway (gateway.config.ts with the backend's real port and free listener ports). */
async function startExample(t: TestContext): Promise<string> {
  const backend = await startLibraryBackend({ host: '127.0.0.1', port: 0 });
  t.after(() => backend.close());
  const [library, ...others] = exampleConfig.backends ?? [];
  assert.ok(library, 'gateway.config.ts names the library backend');
  const gateway = await startGateway(
    {
      ...exampleConfig,
      http: { ...exampleConfig.http, host: '127.0.0.1', port: 0 },
      // Not used by the curl lines; port 0 so that a running `npm start` (9090, 9901) never collides with the test.
      grpc: { ...exampleConfig.grpc, host: '127.0.0.1', port: 0 },
      admin: { ...exampleConfig.admin, host: '127.0.0.1', port: 0 },
      backends: [{ ...library, endpoints: [`127.0.0.1:${backend.port}`] }, ...others],
    },
    REPO_DIR,
  );
  t.after(() => gateway.close());
  return gateway.url;
}

async function sh(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('sh', ['-c', command], { cwd: REPO_DIR, timeout: 15_000, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

function checkOutput(example: CurlExample, stdout: string, window: { from: number; to: number }): void {
  const { output } = example;
  if (output.lang === 'text') {
    assert.equal(stdout, output.body + '\n');
    return;
  }
  const documented = parseDocumentedJson(output.body, `line ${output.line}`);
  if (documented.kind === 'json') {
    let actual: Json;
    try {
      actual = JSON.parse(stdout) as Json;
    } catch (err) {
      assert.fail(`the response is not one JSON value (${(err as Error).message}):\n${stdout}`);
    }
    // A one-message NDJSON stream is also one JSON value; it ends in "\n".
    assert.ok(stdout === JSON.stringify(actual) || stdout === JSON.stringify(actual) + '\n', `the gateway sends compact JSON:\n${stdout}`);
    assert.deepStrictEqual(normaliseTimes(actual, documented.value, window), documented.value);
    return;
  }
  assert.ok(stdout.endsWith('\n'), `an NDJSON response ends every line with "\\n":\n${stdout}`);
  const lines = stdout.slice(0, -1).split('\n');
  const actual = lines.map((l, n) => {
    try {
      return JSON.parse(l) as Json;
    } catch (err) {
      return assert.fail(`response line ${n + 1} is not JSON (${(err as Error).message}): ${l}`);
    }
  });
  assert.deepStrictEqual(
    actual.map((v, n) => normaliseTimes(v, documented.values[n], window)),
    documented.values,
  );
}

for (const file of ['README.md', 'examples/README.md']) {
  test(`${file}: every curl line prints the documented output`, async (t) => {
    const examples = curlExamples(file);
    assert.ok(examples.length >= 4, `${file}: expected the documented curl examples, found ${examples.length}`);
    const from = Date.now();
    const url = await startExample(t);
    for (const example of examples) {
      const command = example.command.replaceAll(DOC_URL, url);
      await t.test(`${file}:${example.line}: ${example.command.replace(/\\\n\s*/g, '')}`, async () => {
        const result = await sh(command);
        assert.equal(result.code, 0, `\`${example.command}\` exited with ${result.code}: ${result.stderr}`);
        checkOutput(example, result.stdout, { from, to: Date.now() });
      });
    }
  });
}

test(`README.md: \`${ROUTES_COMMAND}\` prints the route table`, async () => {
  const readme = readFileSync(path.join(REPO_DIR, 'README.md'), 'utf8');
  const documented = fences(readme, 'README.md')
    .filter((f) => f.lang === 'sh')
    .flatMap((f) => shCommands(f.body));
  assert.ok(documented.includes(ROUTES_COMMAND), `README.md documents \`${ROUTES_COMMAND}\``);
  const result = await sh(ROUTES_COMMAND);
  assert.equal(result.code, 0, `exit code of \`${ROUTES_COMMAND}\`; stderr: ${result.stderr}`);
  assert.match(result.stdout, /^GET\s+\/v1\/\{name=shelves\/\*\/books\/\*\}\s+library\.v1\.LibraryService\/GetBook\b/m);
});
