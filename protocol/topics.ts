/**
 * Every MQTT topic: built AND parsed here, nowhere else. The device, the operator tools and the generated
 * docs/mqtt.md read this file; payload schemas are in messages.ts, commands in commands.ts.
 *
 *   <prefix>/<device>/status | predictions | telemetry | cmd | cmd/reply | head/set | head/state
 *   <prefix>/groups/<group>/head/set       a head for a group
 *   <prefix>/all/head/set                  a head for the whole fleet
 */

import { RESERVED_DEVICE_IDS } from './patterns';

/** Where a head is pushed to: one device, a group of devices, or the fleet. */
export type HeadScope = { kind: 'device'; device: string } | { kind: 'group'; group: string } | { kind: 'all' };

/** The per-device topic kinds (the last one or two levels after <prefix>/<device>/). */
export const DEVICE_TOPIC_KINDS = ['status', 'predictions', 'telemetry', 'cmd', 'cmd/reply', 'head/set', 'head/state', 'state', 'snapshot', 'schedule'] as const;
export type DeviceTopicKind = (typeof DEVICE_TOPIC_KINDS)[number];

/** The first level after the prefix that names a group or the fleet, not a device. */
const GROUPS = 'groups';
const FLEET = 'all';

/** Topic levels with a meaning after the prefix: a device id may not be one of them (it would be ambiguous). */
export const RESERVED_FIRST_LEVELS: readonly string[] = RESERVED_DEVICE_IDS;

export type ParsedTopic = { kind: Exclude<DeviceTopicKind, 'head/set'>; device: string } | { kind: 'head/set'; scope: HeadScope };

/** One device's topics: what it publishes and what it subscribes to. */
export interface DeviceTopics {
  status: string;
  predictions: string;
  telemetry: string;
  cmd: string;
  cmdReply: string;
  headState: string;
  /** Retained plain-text top-1 label (Home Assistant, Node-RED). */
  state: string;
  /** JPEG of a frame (snapshot command, periodic snapshots). */
  snapshot: string;
  /** Retained plain text: "running" or "paused" (the schedule). */
  schedule: string;
  /** Head topics this device listens to, highest precedence first: its own, its groups', the fleet's. */
  headSet: string[];
}

export function deviceTopic(prefix: string, device: string, kind: DeviceTopicKind): string {
  return `${prefix}/${device}/${kind}`;
}

export function headSetTopic(prefix: string, scope: HeadScope): string {
  switch (scope.kind) {
    case 'device':
      return deviceTopic(prefix, scope.device, 'head/set');
    case 'group':
      return `${prefix}/${GROUPS}/${scope.group}/head/set`;
    case 'all':
      return `${prefix}/${FLEET}/head/set`;
  }
}

/** A subscription filter for one kind of topic of every device (e.g. all head/state topics). */
export function everyDeviceTopic(prefix: string, kind: DeviceTopicKind): string {
  return deviceTopic(prefix, '+', kind);
}

export function deviceTopics(prefix: string, device: string, groups: readonly string[] = []): DeviceTopics {
  return {
    status: deviceTopic(prefix, device, 'status'),
    predictions: deviceTopic(prefix, device, 'predictions'),
    telemetry: deviceTopic(prefix, device, 'telemetry'),
    cmd: deviceTopic(prefix, device, 'cmd'),
    cmdReply: deviceTopic(prefix, device, 'cmd/reply'),
    headState: deviceTopic(prefix, device, 'head/state'),
    state: deviceTopic(prefix, device, 'state'),
    snapshot: deviceTopic(prefix, device, 'snapshot'),
    schedule: deviceTopic(prefix, device, 'schedule'),
    headSet: [
      headSetTopic(prefix, { kind: 'device', device }),
      ...groups.map((group) => headSetTopic(prefix, { kind: 'group', group })),
      headSetTopic(prefix, { kind: 'all' }),
    ],
  };
}

/** What a topic under `prefix` is, or undefined for anything else (other prefixes, unknown kinds, wildcards). */
export function parseTopic(prefix: string, topic: string): ParsedTopic | undefined {
  if (!topic.startsWith(prefix + '/')) return undefined;
  const levels = topic.slice(prefix.length + 1).split('/');
  if (levels.some((l) => l === '' || l === '+' || l === '#')) return undefined;
  const [first, ...rest] = levels as [string, ...string[]];
  const kind = rest.join('/');
  if (first === FLEET && kind === 'head/set') return { kind: 'head/set', scope: { kind: 'all' } };
  if (first === GROUPS && rest.length === 3 && rest[1] === 'head' && rest[2] === 'set') {
    return { kind: 'head/set', scope: { kind: 'group', group: rest[0]! } };
  }
  if (!(DEVICE_TOPIC_KINDS as readonly string[]).includes(kind) || RESERVED_FIRST_LEVELS.includes(first)) return undefined;
  if (kind === 'head/set') return { kind, scope: { kind: 'device', device: first } };
  return { kind: kind as Exclude<DeviceTopicKind, 'head/set'>, device: first };
}

/** The scope of a head/set topic, or undefined if `topic` is not one. */
export function headScopeOf(prefix: string, topic: string): HeadScope | undefined {
  const t = parseTopic(prefix, topic);
  return t?.kind === 'head/set' ? t.scope : undefined;
}

/** Precedence of a head's scope: a head for the device beats a group head beats a fleet head. */
export function scopeRank(scope: HeadScope | undefined): number {
  if (!scope) return 0;
  return scope.kind === 'device' ? 3 : scope.kind === 'group' ? 2 : 1;
}

/** One row of the topic table in docs/mqtt.md (generated from here by protocol/docs.ts). */
export interface TopicDoc {
  topic: string;
  direction: 'device ->' | '-> device';
  qos: string;
  payload: string;
}

export const TOPIC_DOCS: readonly TopicDoc[] = [
  { topic: '<prefix>/<device>/status', direction: 'device ->', qos: '1, retained', payload: 'birth (`online`) / last will and shutdown (`offline`)' },
  { topic: '<prefix>/<device>/predictions', direction: 'device ->', qos: '`predictions.qos` (1)', payload: 'one prediction per published frame' },
  { topic: '<prefix>/<device>/telemetry', direction: 'device ->', qos: '0', payload: 'every `telemetry.intervalSec` (60)' },
  { topic: '<prefix>/<device>/cmd', direction: '-> device', qos: '1', payload: '`{id, cmd, args}`' },
  { topic: '<prefix>/<device>/cmd/reply', direction: 'device ->', qos: '1', payload: '`{id, ok, error?, data?}`' },
  { topic: '<prefix>/<device>/head/set', direction: '-> device', qos: '1', payload: 'binary head (hot-swap)' },
  { topic: `<prefix>/${GROUPS}/<group>/head/set`, direction: '-> device', qos: '1, retained', payload: 'binary head for a group' },
  { topic: `<prefix>/${FLEET}/head/set`, direction: '-> device', qos: '1, retained', payload: 'binary head for the fleet' },
  { topic: '<prefix>/<device>/head/state', direction: 'device ->', qos: '1, retained', payload: 'active / previous head and the last update' },
  { topic: '<prefix>/<device>/state', direction: 'device ->', qos: '1, retained', payload: 'the top-1 label as plain text (`predictions.unknownLabel` below `predictions.minScore`)' },
  { topic: '<prefix>/<device>/snapshot', direction: 'device ->', qos: '0 (retained with `snapshot.retain`)', payload: 'a frame as JPEG (the `snapshot` command, `snapshot.intervalSec`)' },
  { topic: '<prefix>/<device>/schedule', direction: 'device ->', qos: '1, retained', payload: '`running` or `paused` (the `pause` / `resume` commands)' },
  { topic: '<haPrefix>/<platform>/<device>/<entity>/config', direction: 'device ->', qos: '1, retained', payload: 'Home Assistant discovery config, one per entity (docs/home-assistant.md); empty to remove' },
  { topic: '<haPrefix>/status', direction: '-> device', qos: '0 or 1', payload: 'Home Assistant\'s `online` / `offline`: `online` makes the device announce its entities again' },
];
