/** Writes docs/cli.md from the command specs: `npx tsx scripts/gen-cli-docs.ts` (--check: exit 1 if stale). */
import * as path from 'node:path';
import { renderCliDocs } from '../cli/docs';
import { writeGenerated } from './generated-file';

writeGenerated(path.resolve(__dirname, '..', 'docs', 'cli.md'), renderCliDocs(), 'scripts/gen-cli-docs.ts');
