/** The README documents what the code has: every metric, every config option's default. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { METRICS_DOC } from '../src/observability/metrics.ts';
import { configSchema } from '../src/config/schema.ts';

const readme = fs.readFileSync('README.md', 'utf8');

test('the README lists every metric with its type and labels', () => {
  for (const m of METRICS_DOC) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${m.name}\` |`));
    assert.ok(row, `README has a row for ${m.name}`);
    assert.ok(row.includes(`| ${m.type} |`), `${m.name} is a ${m.type}`);
    for (const l of m.labels) assert.ok(row.includes(`\`${l}\``), `${m.name} has label ${l}`);
  }
});

test('the README config reference gives the real default of every top-level option group', () => {
  const d = configSchema.parse({ protos: { files: ['x.proto'] } });
  const expect: Array<[string, string]> = [
    ['`http.host` / `http.port`', `\`${d.http.host}\` / \`${d.http.port}\``],
    ['`http.bodyLimit`', `\`${d.http.bodyLimit}\``],
    ['`grpc.host` / `grpc.port`', `\`${d.grpc.host}\` / \`${d.grpc.port}\``],
    ['`admin.host` / `admin.port` / `admin.enabled`', `\`${d.admin.host}\` / \`${d.admin.port}\` / \`${d.admin.enabled}\``],
    ['`shutdown.drainDelayMs`', `\`${d.shutdown.drainDelayMs}\``],
    ['`shutdown.timeoutMs`', `\`${d.shutdown.timeoutMs}\``],
    ['`transcoding.unknownQueryParams`', `\`'${d.transcoding.unknownQueryParams}'\``],
    ['`transcoding.unknownBodyFields`', `\`'${d.transcoding.unknownBodyFields}'\``],
    ['`transcoding.maxJsonDepth`', `\`${d.transcoding.maxJsonDepth}\``],
    ['`log.level`', `\`'${d.log.level}'\``],
  ];
  for (const [option, value] of expect) {
    const row = readme.split('\n').find((l) => l.startsWith(`| ${option} |`));
    assert.ok(row, `README has a row for ${option}`);
    assert.ok(row.includes(`| ${value} |`) || row.includes(`| ${value} (`), `${option} defaults to ${value}: ${row}`);
  }
});
