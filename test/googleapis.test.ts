/**
 * Real-world scale: 188 googleapis files from google-proto-files (Pub/Sub, Spanner, Firestore, Vertex AI,
 * Storage, IAM, Datastore, Bigtable admin, KMS, Secret Manager, long-running operations) load, every HTTP rule
 * compiles into one router, and the conflicts are reported deterministically. The counts are pinned: a change
 * in loading, rule extraction or precedence shows up here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { bundledProtoDir, loadProtos } from '../src/proto/load.ts';
import { parseTemplate, RouterBuilder } from '../src/routing/index.ts';
import { globSync } from 'tinyglobby';
import { compileRequest } from '../src/transcode/request.ts';
import { compileResponse } from '../src/transcode/response.ts';

const PATTERNS = [
  'google/pubsub/v1/*.proto', 'google/spanner/v1/*.proto', 'google/spanner/admin/*/v1/*.proto',
  'google/firestore/v1/*.proto', 'google/firestore/admin/v1/*.proto', 'google/cloud/aiplatform/v1/*.proto',
  'google/storage/v2/*.proto', 'google/longrunning/*.proto', 'google/iam/v1/*.proto', 'google/datastore/v1/*.proto',
  'google/bigtable/admin/v2/*.proto', 'google/cloud/kms/v1/*.proto', 'google/cloud/secretmanager/v1/*.proto',
];

test('188 googleapis files load, all their HTTP rules compile, conflicts are reported deterministically', () => {
  const dir = bundledProtoDir();
  const set = loadProtos({ includeDirs: [dir], files: PATTERNS.map((p) => path.join(dir, p)) });
  const builder = new RouterBuilder<string>();
  let rules = 0;
  const transcodeOptions = { unknownQueryParams: 'ignore', unknownBodyFields: 'reject', maxJsonDepth: 64 } as const;
  const responseOptions = { emitUnpopulated: false, useProtoNames: false, enumsAsInts: false };
  for (const m of set.methods) {
    for (const r of m.rules) {
      const source = `${m.service}.${m.name} (${m.file})`;
      const template = parseTemplate(r.pattern);
      builder.add(r.method, template, source, source);
      rules++;
      if (m.kind === 'unary' || m.kind === 'server_streaming') {
        compileRequest(m, r, template.variables.map((v) => v.fieldPath), set.registry, transcodeOptions);
        compileResponse(m, r, set.registry, responseOptions);
      }
    }
  }
  const { router, conflicts } = builder.build();
  const listed = globSync(PATTERNS, { cwd: dir }).length;
  const counts = { listed, files: new Set(set.methods.map((m) => m.file)).size, services: set.services.size, methods: set.methods.length, rules };
  const byKind = { duplicate: 0, overlap: 0 };
  for (const c of conflicts) byKind[c.kind]++;
  assert.deepEqual({ ...counts, ...byKind }, EXPECTED);
  // Deterministic: building again gives the same reports in the same order.
  const again = new RouterBuilder<string>();
  for (const r of router.routes()) again.add(r.method, r.template, r.value, r.source);
  assert.deepEqual(again.build().conflicts.map((c) => c.message), conflicts.map((c) => c.message));
  // Firestore's mid-path ** pair resolves by precedence, not registration order.
  const hit = router.match('GET', '/v1/projects/p/databases/d/documents/col/doc/sub');
  assert.equal(hit.kind, 'found');
  assert.match(hit.kind === 'found' ? hit.value : '', /google\.firestore\.v1\.Firestore\.ListDocuments/);
});

const EXPECTED = { listed: 188, files: 53, services: 54, methods: 674, rules: 718, duplicate: 0, overlap: 3 };
