/** docs/cli.md from the command specs (scripts/gen-cli-docs.ts writes it; a unit test checks it is up to date). */
import type { Command } from './args';
import { COMMANDS, usage } from './main';

function section(cmd: Command, path: string, level: number): string[] {
  const title = `${'#'.repeat(level)} \`edgehead ${path}\``;
  if (cmd.subcommands) {
    return [
      title,
      '',
      `${cmd.summary}.`,
      '',
      ...cmd.subcommands.map((c) => `- [\`edgehead ${path} ${c.name}\`](#${anchor(`edgehead ${path} ${c.name}`)}): ${c.summary}`),
      '',
      ...cmd.subcommands.flatMap((c) => section(c, `${path} ${c.name}`, Math.min(level + 1, 4))),
    ];
  }
  return [title, '', `${cmd.summary}.`, '', '```text', cmd.help(), '```', ''];
}

/** GitHub's heading anchor for a heading text. */
function anchor(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-');
}

export function renderCliDocs(): string {
  return [
    '# Command line',
    '',
    '<!-- Generated from the command specs in cli/commands/*.ts by scripts/gen-cli-docs.ts: do not edit. -->',
    '',
    'Every command prints the same text with `--help` (or `edgehead help COMMAND`). Exit codes: 0 ok, 1 failed (bad',
    'input, runtime error), 2 bad arguments or configuration.',
    '',
    '```text',
    usage(),
    '```',
    '',
    ...COMMANDS.flatMap((c) => section(c, c.name, 2)),
  ].join('\n');
}
