/** Rewrites the generated sections of docs/mqtt.md from protocol/: `npx tsx scripts/gen-mqtt-docs.ts` (--check: exit 1 if stale). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderMqttDocs } from '../protocol/docs';
import { writeGenerated } from './generated-file';

const target = path.resolve(__dirname, '..', 'docs', 'mqtt.md');
writeGenerated(target, renderMqttDocs(fs.readFileSync(target, 'utf8')), 'scripts/gen-mqtt-docs.ts');
