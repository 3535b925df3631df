/** `edgehead doctor`: what this machine gives the agent (backend, SIMD, threads, Node, CPUs, models). */
import { initBackend } from '../../agent/backend/wasm';
import { initImageCodecs } from '../../agent/image';
import { CATALOGUE } from '../../agent/extractors/catalogue';
import { readModelFolder } from '../../agent/extractors/model-files';
import { resourcePath } from '../../base/paths';
import { agentVersion } from '../../base/version';
import { defaultConfig } from '../../config/defaults';
import { choiceArg, type Command, help, parseCommandArgs } from '../args';
import { BACKEND_CHOICES } from '../runtime';

const USAGE = `edgehead doctor [--json] [--backend ${BACKEND_CHOICES.join('|')}]`;

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'report backend, SIMD, threads, Node version, CPU count and installed models',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { json: { type: 'boolean' }, backend: { type: 'string' } }, USAGE);
    if (values.help) return help(USAGE);
    const d = defaultConfig();
    const backend = choiceArg(values.backend, 'backend', BACKEND_CHOICES, d.backend.name);
    const info = await initBackend({ backend, threads: d.backend.threads });
    const models = CATALOGUE.map((e) => {
      try {
        readModelFolder(resourcePath('models', e.id));
        return { id: e.id, installed: true };
      } catch {
        return { id: e.id, installed: false };
      }
    });
    const codecs = initImageCodecs();
    const report = { version: agentVersion(), ...info, jpegDecoder: codecs.jpeg, models };
    if (values.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return 0;
    }
    const rows: [string, string][] = [
      ['edgehead', report.version],
      ['node', `${info.node} (${process.platform}/${info.arch})`],
      ['cpus', String(info.cpus)],
      ['backend', `${info.backend} (tfjs ${info.tfjsVersion})`],
      ['simd', info.simd ? 'yes' : 'no'],
      ['threads', `${info.threads}${info.threadsNote ? ` (${info.threadsNote})` : ''}`],
      ...(info.wasmBinary ? [['wasm binary', `${info.wasmBinary} in ${info.wasmDir}`] as [string, string]] : []),
      ['jpeg', `${codecs.jpeg}${'note' in codecs && codecs.note ? ` (${codecs.note})` : ''}`],
      ['models', models.map((m) => `${m.id}${m.installed ? '' : ' (missing)'}`).join(', ')],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(12)} ${v}\n`);
    return models.every((m) => m.installed) ? 0 : 1;
  },
};
