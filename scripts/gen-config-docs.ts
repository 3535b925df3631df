/** Writes docs/configuration.md from config/schema.ts: `npx tsx scripts/gen-config-docs.ts` (--check: exit 1 if stale). */
import * as path from 'node:path';
import { renderConfigDocs } from '../config/docs';
import { writeGenerated } from './generated-file';

writeGenerated(path.resolve(__dirname, '..', 'docs', 'configuration.md'), renderConfigDocs(), 'scripts/gen-config-docs.ts');
