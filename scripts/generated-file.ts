/** Writes a generated doc, or with --check exits 1 when the committed one differs (used by scripts/gen-*-docs.ts). */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeGenerated(target: string, text: string, script: string): void {
  const rel = path.relative(process.cwd(), target);
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
    if (current !== text) {
      process.stderr.write(`${rel} is stale: run npx tsx ${script}\n`);
      process.exit(1);
    }
    process.stdout.write(`${rel} is up to date\n`);
  } else {
    fs.writeFileSync(target, text);
    process.stdout.write(`wrote ${rel} (${text.length} bytes)\n`);
  }
}
