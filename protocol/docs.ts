/**
 * The generated parts of docs/mqtt.md: the topic table, the command table and one field table per JSON payload,
 * all from this room (topics.ts, commands.ts, messages.ts, patterns.ts). Each part sits between
 * `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; scripts/gen-mqtt-docs.ts rewrites them and a test checks
 * the committed file is current.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { COMMAND_NAMES, COMMANDS } from './commands';
import { PAYLOADS } from './messages';
import { CMD_MAX_BYTES, HEAD_MAX_BYTES, ID_RULE, TOPIC_PREFIX_RULE } from './patterns';
import { TOPIC_DOCS } from './topics';

type S = TSchema & Record<string, unknown>;

function typeName(s: S): string {
  switch (s[Kind]) {
    case 'Literal':
      return JSON.stringify(s.const);
    case 'Union':
      return (s.anyOf as S[]).map(typeName).join(' \\| ');
    case 'Array':
      return `${typeName(s.items as S)}[]`;
    case 'Tuple':
      return `[${((s.items as S[]) ?? []).map(typeName).join(', ')}]`;
    case 'Object':
      return 'object';
    case 'Integer':
      return 'integer';
    default:
      return String(s[Kind]).toLowerCase();
  }
}

function constraints(s: S): string {
  const c: string[] = [];
  if (s.minimum !== undefined) c.push(`>= ${s.minimum}`);
  if (s.maximum !== undefined) c.push(`<= ${s.maximum}`);
  if (typeof s.patternMessage === 'string') c.push(s.patternMessage);
  return c.join(', ');
}

/** Rows (path, type, required, description) of an object schema, nested objects flattened up to `depth`. */
function fieldRows(schema: S, prefix = '', depth = 2): string[][] {
  const props = (schema.properties ?? {}) as Record<string, S>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const rows: string[][] = [];
  for (const [key, s] of Object.entries(props)) {
    const path = prefix + key;
    const note = [s.description as string | undefined, constraints(s)].filter(Boolean).join('; ');
    rows.push([`\`${path}\``, typeName(s), required.has(key) ? 'yes' : 'no', note]);
    const obj = s[Kind] === 'Object' ? s : s[Kind] === 'Union' ? (s.anyOf as S[]).find((a) => a[Kind] === 'Object') : undefined;
    if (obj && depth > 1 && Object.keys((obj.properties ?? {}) as object).length <= 8) rows.push(...fieldRows(obj, `${path}.`, depth - 1));
  }
  return rows;
}

const table = (header: string[], rows: string[][]): string =>
  [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const PAYLOAD_TITLES: Record<keyof typeof PAYLOADS, string> = {
  birth: '`status`: birth',
  offline: '`status`: offline (last will, shutdown)',
  prediction: '`predictions`',
  telemetry: '`telemetry`',
  headState: '`head/state`',
  command: '`cmd`: request',
  commandReply: '`cmd/reply`',
};

export function generatedSections(): Record<string, string> {
  return {
    topics: [
      table(['topic', 'direction', 'QoS / retain', 'payload'], TOPIC_DOCS.map((t) => [`\`${t.topic}\``, t.direction, t.qos, t.payload])),
      '',
      `\`<prefix>\` is \`mqtt.topicPrefix\`: it ${TOPIC_PREFIX_RULE}. Device ids and group names ${ID_RULE}.`,
    ].join('\n'),
    commands: [
      table(
        ['cmd', 'args', 'what it does'],
        COMMAND_NAMES.map((n) => {
          const rows = fieldRows(COMMANDS[n].args as S, '', 1);
          const args = rows.length ? rows.map((r) => `${r[0]}${r[2] === 'no' ? '?' : ''}: ${r[1]}${r[3] ? ` (${r[3]})` : ''}`).join('<br>') : '—';
          return [`\`${n}\``, args, COMMANDS[n].summary];
        }),
      ),
      '',
      `A request is at most ${CMD_MAX_BYTES / 1024} KiB; a larger one, one that is not JSON, an unknown command or bad arguments get`,
      '`ok: false` with the reason (and the request\'s id when it has a usable one).',
    ].join('\n'),
    payloads: (Object.keys(PAYLOADS) as (keyof typeof PAYLOADS)[])
      .map((k) => `### ${PAYLOAD_TITLES[k]}\n\n${table(['field', 'type', 'required', 'notes'], fieldRows(PAYLOADS[k] as S))}`)
      .join('\n\n')
      .concat(`\n\n\`head/set\` is binary (docs/head-format.md), at most \`head.maxBytes\` (default ${HEAD_MAX_BYTES / 1024 / 1024} MiB).`),
  };
}

/** `doc` with every generated section replaced by its current text. Throws if a marker is missing. */
export function renderMqttDocs(doc: string): string {
  let out = doc;
  for (const [name, body] of Object.entries(generatedSections())) {
    const open = `<!-- generated:${name} -->`;
    const close = `<!-- /generated:${name} -->`;
    const a = out.indexOf(open);
    const b = out.indexOf(close);
    if (a < 0 || b < a) throw new Error(`docs/mqtt.md: markers ${open} ... ${close} not found`);
    out = `${out.slice(0, a + open.length)}\n${body}\n${out.slice(b)}`;
  }
  return out;
}
