/** Writes docs/fleet-configuration.md from operator/fleet/config.ts: `npx tsx scripts/gen-fleet-config-docs.ts` (--check: exit 1 if stale). */
import * as path from 'node:path';
import { renderFleetConfigDocs } from '../operator/fleet/config';
import { writeGenerated } from './generated-file';

writeGenerated(path.resolve(__dirname, '..', 'docs', 'fleet-configuration.md'), renderFleetConfigDocs(), 'scripts/gen-fleet-config-docs.ts');
