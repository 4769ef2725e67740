/**
 * Differential test of our JSON paths against protobufjs' protojson (conformant, unrelated implementation) on
 * random testpb.AllTypes messages, both directions:
 *   binary -> JSON: protobufjs encodes a message; our response transcoder renders it; protojson renders it too.
 *   JSON -> binary: a random proto3 JSON text (random name spelling, int64 as number or string, URL-safe or
 *     unpadded base64, enum aliases...) goes through our request transcoder (body "*"); protojson parses the same
 *     text; both messages are compared through protojson. About 1 in 8 texts is made invalid on purpose: both
 *     must then reject it.
 * A seeded generator; set DIFF_SEED to replay, DIFF_RUNS to change the count. The seed is printed on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DescMessage } from '@bufbuild/protobuf';
import { corrupt, message, rng, type Json } from './helpers/random-json.ts';
import { GatewayError } from '../src/errors/index.ts';
import { compileRequest, DEFAULT_REQUEST_OPTIONS } from '../src/transcode/request.ts';
import { compileResponse, DEFAULT_RESPONSE_OPTIONS } from '../src/transcode/response.ts';
import { findMethod, findRule, loadEverything, loadEverythingPbjs, protojson } from './transcode-fixtures.ts';

const RUNS = Number(process.env.DIFF_RUNS ?? 10_000);
const SEED = Number(process.env.DIFF_SEED ?? (Date.now() % 2 ** 31));

function sameJson(a: unknown, b: unknown, path: string): string | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a === b ? undefined : `${path}: ${a} !== ${b}`;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: length ${a.length} !== ${b.length}`;
    for (let i = 0; i < a.length; i++) { const d = sameJson(a[i], b[i], `${path}[${i}]`); if (d) return d; }
    return undefined;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.join('\0') !== kb.join('\0')) return `${path}: keys ${JSON.stringify(ka)} !== ${JSON.stringify(kb)}`;
    for (const k of ka) { const d = sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`); if (d) return d; }
    return undefined;
  }
  return a === b ? undefined : `${path}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`;
}

test(`json differential: ${RUNS} random testpb.AllTypes messages agree with protobufjs protojson (seed ${SEED})`, () => {
  const set = loadEverything();
  const root = loadEverythingPbjs();
  const T = root.lookupType('testpb.AllTypes');
  const echo = findMethod(set, 'Echo');
  const req = compileRequest(echo, findRule(echo), [], set.registry, DEFAULT_REQUEST_OPTIONS);
  const res = compileResponse(echo, findRule(echo), set.registry, DEFAULT_RESPONSE_OPTIONS);
  const lookup = (n: string): DescMessage => set.registry.getMessage(n)!;
  const r = rng(SEED);
  let invalid = 0;
  let bytesTotal = 0;
  const fail = (i: number, what: string, text: string): never =>
    assert.fail(`message #${i} (DIFF_SEED=${SEED}): ${what}\ninput: ${text.slice(0, 2000)}`);

  for (let i = 0; i < RUNS; i++) {
    let json = message(r, echo.input, 0, lookup) as Record<string, Json>;
    const broken = r.chance(0.125);
    if (broken) json = corrupt(r, json);
    const text = JSON.stringify(json);

    // JSON -> binary
    let theirs: ReturnType<typeof protojson.fromJson> | undefined;
    let theirError: unknown;
    try { theirs = protojson.fromJson(T, JSON.parse(text)); } catch (err) { theirError = err; }
    let ours: Uint8Array | undefined;
    let ourError: unknown;
    try {
      ours = req.transcode({ params: [], query: '', body: Buffer.from(text), contentType: 'application/json' });
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      ourError = err;
    }
    if ((theirError === undefined) !== (ourError === undefined)) {
      fail(i, `accept/reject disagree: ours ${ourError ? 'rejects: ' + (ourError as Error).message : 'accepts'}, protojson ${theirError ? 'rejects: ' + (theirError as Error).message : 'accepts'}`, text);
    }
    if (ourError) {
      if (!broken) fail(i, `both reject a generated valid message: ${(ourError as Error).message}`, text);
      invalid++;
      continue;
    }
    const expected = protojson.toJson(T, theirs!);
    const diff1 = sameJson(protojson.toJson(T, T.decode(ours!)), expected, '$');
    if (diff1) fail(i, `JSON -> binary differs: ${diff1}`, text);

    // binary (encoded by protobufjs) -> JSON
    const bytes = T.encode(theirs!).finish();
    bytesTotal += bytes.length;
    const rendered = JSON.parse(res.body(bytes).body as string);
    const diff2 = sameJson(rendered, expected, '$');
    if (diff2) fail(i, `binary -> JSON differs: ${diff2}`, text);
  }
  assert.ok(invalid > RUNS / 20, `only ${invalid} invalid inputs exercised`);
  assert.ok(bytesTotal / RUNS > 50, 'messages are too small to mean much');
});
