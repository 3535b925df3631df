/** Rewrites the generated sections of docs/mqtt.md from protocol/: `npx tsx scripts/gen-mqtt-docs.ts` (--check: exit 1 if stale). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderMqttDocs } from '../protocol/docs';

const target = path.resolve(__dirname, '..', 'docs', 'mqtt.md');
const current = fs.readFileSync(target, 'utf8');
const text = renderMqttDocs(current);
if (process.argv.includes('--check')) {
  if (current !== text) {
    process.stderr.write(`${path.relative(process.cwd(), target)} is stale: run npx tsx scripts/gen-mqtt-docs.ts\n`);
    process.exit(1);
  }
  process.stdout.write(`${path.relative(process.cwd(), target)} is up to date\n`);
} else {
  fs.writeFileSync(target, text);
  process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
}
