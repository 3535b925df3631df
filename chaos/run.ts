/**
 * `npm run chaos`: the agent (the bundle, as deployed) against a real Mosquitto through hostile and flaky worlds,
 * loopback only, each scenario bounded. One line per scenario:
 *   <name>: published N, received N, lost L, duplicates K, peak RSS M MB[; notes]
 * Exit 1 when a scenario broke its promise (docs/RELIABILITY.md says what each proves).
 *   --short        CI's version (a few minutes)      --only a,b   just these scenarios
 *   --json FILE    the results as JSON               --no-build   use dist/ as it is
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { BUNDLE, ROOT } from './harness';
import { NETWORK } from './scenarios/network';
import { STATE } from './scenarios/state';
import { INPUTS } from './scenarios/inputs';
import { type Outcome, runScenario, type Scenario } from './world';

const ALL: Scenario[] = [...NETWORK, ...STATE, ...INPUTS];

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { short: { type: 'boolean' }, only: { type: 'string' }, json: { type: 'string' }, 'no-build': { type: 'boolean' } } });
  const only = values.only?.split(',');
  const unknown = only?.filter((n) => !ALL.some((s) => s.name === n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`chaos: unknown scenario ${unknown.join(', ')} (known: ${ALL.map((s) => s.name).join(', ')})\n`);
    return 2;
  }
  if (!values['no-build'] || !fs.existsSync(BUNDLE)) execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const short = values.short === true;
  const results: (Outcome & { name: string; seconds: number })[] = [];
  for (const s of ALL.filter((x) => !only || only.includes(x.name))) {
    const t0 = Date.now();
    process.stderr.write(`chaos: ${s.name} (${s.proves})...\n`);
    const o = await runScenario(s, { short });
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    results.push({ name: s.name, seconds, ...o });
    const notes = o.notes.length ? `; ${o.notes.join('; ')}` : '';
    process.stdout.write(`${s.name}: published ${o.published}, received ${o.received}, lost ${o.lost}, duplicates ${o.duplicates}, peak RSS ${o.peakRssMB} MB${notes}${o.failure ? `  FAILED: ${o.failure}` : ''}  (${seconds} s)\n`);
  }
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ short, at: new Date().toISOString(), results }, null, 2) + '\n');
  const failed = results.filter((r) => r.failure);
  process.stdout.write(`chaos: ${results.length - failed.length} of ${results.length} scenarios held${failed.length ? `; FAILED: ${failed.map((f) => f.name).join(', ')}` : ''}\n`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`chaos: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
