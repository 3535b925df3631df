/** `edgehead head inspect HEAD [--json]`: manifest, checksum and signature status of a head file. */
import { defaultConfig } from '../../../config/defaults';
import { readHeadFile } from '../../head/files';
import { EdgeheadError } from '../../util/errors';
import { type Command, help, parseCommandArgs } from '../args';

const USAGE = 'edgehead head inspect HEAD [--json]';

export const headInspectCommand: Command = {
  name: 'inspect',
  summary: 'print a head file\'s manifest, checksum and signature status',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, USAGE);
    if (values.help) return help(USAGE);
    if (positionals.length !== 1) throw new EdgeheadError('BAD_ARGS', 'head inspect takes exactly one head file');
    const head = readHeadFile(positionals[0]!, defaultConfig().head.maxBytes);
    const { testVectors, ...manifest } = head.manifest;
    const summary = {
      ...manifest,
      testVectors: testVectors?.length ?? 0,
      checksum: 'ok (sha256 of the weights matches)',
      signature: manifest.signature ? `present (ed25519, key ${manifest.signature.keyId})` : 'unsigned',
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      return 0;
    }
    for (const [k, v] of Object.entries(summary)) {
      process.stdout.write(`${k.padEnd(12)} ${typeof v === 'object' ? JSON.stringify(v) : v}\n`);
    }
    return 0;
  },
};
