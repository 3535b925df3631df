/** Writes docs/configuration.md from config/schema.ts: `npx tsx scripts/gen-config-docs.ts` (--check: exit 1 if stale). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderConfigDocs } from '../config/docs';

const target = path.resolve(__dirname, '..', 'docs', 'configuration.md');
const text = renderConfigDocs();
if (process.argv.includes('--check')) {
  const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
  if (current !== text) {
    process.stderr.write(`${path.relative(process.cwd(), target)} is stale: run npx tsx scripts/gen-config-docs.ts\n`);
    process.exit(1);
  }
  process.stdout.write(`${path.relative(process.cwd(), target)} is up to date\n`);
} else {
  fs.writeFileSync(target, text);
  process.stdout.write(`wrote ${path.relative(process.cwd(), target)} (${text.length} bytes)\n`);
}
