/**
 * Home Assistant MQTT discovery: the discovery topics and the typed config payload of every entity a device offers.
 * One config topic per entity (`<haPrefix>/<platform>/<node>/<key>/config`, retained) rather than one device-based
 * config: it works with every Home Assistant release, each payload is one platform's schema, and HA groups the
 * entities into one device by `device.identifiers`. The topics depend only on the device id, so the device can clear
 * them (empty retained payloads) without remembering what it published. docs/home-assistant.md describes the result.
 *
 * Field names and rules follow HA's MQTT platforms (sensor, binary_sensor, button, switch, update, image): an `enum`
 * sensor has `options` and neither unit nor state_class; a binary sensor's value_template yields ON/OFF; an update
 * entity's state_topic template yields JSON with installed_version/latest_version.
 */
import { commandRequest, type CommandName } from './commands';
import type { DeviceTopics } from './topics';

export const HA_PLATFORMS = ['sensor', 'binary_sensor', 'button', 'switch', 'update', 'image'] as const;
export type HaPlatform = (typeof HA_PLATFORMS)[number];

/** Every entity of a device: its platform and its key (the last level of its unique id, object id and topic). */
export const HA_ENTITIES = [
  { platform: 'sensor', key: 'label' },
  { platform: 'sensor', key: 'confidence' },
  { platform: 'sensor', key: 'cpu_temperature' },
  { platform: 'sensor', key: 'rss' },
  { platform: 'sensor', key: 'latency_p50' },
  { platform: 'sensor', key: 'latency_p95' },
  { platform: 'sensor', key: 'failed_frames' },
  { platform: 'sensor', key: 'queue_depth' },
  { platform: 'binary_sensor', key: 'problem' },
  { platform: 'button', key: 'capture' },
  { platform: 'button', key: 'rollback' },
  { platform: 'button', key: 'promote' },
  { platform: 'button', key: 'discard' },
  { platform: 'switch', key: 'schedule' },
  { platform: 'update', key: 'head' },
  { platform: 'image', key: 'snapshot' },
] as const satisfies readonly { platform: HaPlatform; key: string }[];
export type HaEntityKey = (typeof HA_ENTITIES)[number]['key'];

/** The topic Home Assistant publishes `online` / `offline` on when it (re)starts or stops. */
export const haStatusTopic = (haPrefix: string): string => `${haPrefix}/status`;
export const HA_ONLINE = 'online';

/** A device id as a discovery topic level and entity id part: HA allows only [a-zA-Z0-9_-] there ("." becomes "_"). */
export const haNodeId = (deviceId: string): string => deviceId.replace(/[^a-zA-Z0-9_-]/g, '_');

export function haConfigTopic(haPrefix: string, platform: HaPlatform, deviceId: string, key: string): string {
  return `${haPrefix}/${platform}/${haNodeId(deviceId)}/${key}/config`;
}

/** Every config topic a device may have published: what switching discovery off clears. */
export const haConfigTopics = (haPrefix: string, deviceId: string): string[] =>
  HA_ENTITIES.map((e) => haConfigTopic(haPrefix, e.platform, deviceId, e.key));

/** The `device` block: one HA device per agent. */
export interface HaDevice {
  identifiers: string[];
  name: string;
  manufacturer: string;
  model: string;
  sw_version: string;
  hw_version?: string;
  configuration_url?: string;
}

/** The `origin` block: what published the config (HA logs it). */
export interface HaOrigin {
  name: string;
  sw_version: string;
  support_url?: string;
}

export interface HaAvailability {
  topic: string;
  value_template: string;
  payload_available: string;
  payload_not_available: string;
}

/** What every entity config carries. */
interface HaCommon {
  name: string;
  unique_id: string;
  /** HA 2025.10+: the entity id suggested on first discovery (replaces object_id). */
  default_entity_id: string;
  device: HaDevice;
  origin: HaOrigin;
  availability: HaAvailability[];
  entity_category?: 'diagnostic' | 'config';
  icon?: string;
}

export interface HaSensorConfig extends HaCommon {
  state_topic: string;
  value_template?: string;
  device_class?: 'enum' | 'temperature' | 'data_size' | 'duration';
  options?: string[];
  state_class?: 'measurement' | 'total_increasing';
  unit_of_measurement?: string;
  suggested_display_precision?: number;
}

export interface HaBinarySensorConfig extends HaCommon {
  state_topic: string;
  value_template: string;
  payload_on: 'ON';
  payload_off: 'OFF';
  device_class: 'problem';
  json_attributes_topic?: string;
  json_attributes_template?: string;
}

export interface HaButtonConfig extends HaCommon {
  command_topic: string;
  payload_press: string;
  qos: 1;
}

export interface HaSwitchConfig extends HaCommon {
  command_topic: string;
  state_topic: string;
  payload_on: string;
  payload_off: string;
  state_on: string;
  state_off: string;
  qos: 1;
}

export interface HaUpdateConfig extends HaCommon {
  state_topic: string;
  value_template: string;
  command_topic: string;
  payload_install: string;
  title: string;
}

export interface HaImageConfig extends HaCommon {
  image_topic: string;
  content_type: 'image/jpeg';
}

export type HaEntityConfig = HaSensorConfig | HaBinarySensorConfig | HaButtonConfig | HaSwitchConfig | HaUpdateConfig | HaImageConfig;

export interface HaDiscoveryInput {
  haPrefix: string;
  deviceId: string;
  topics: DeviceTopics;
  device: HaDevice;
  origin: HaOrigin;
  /** The active head's classes: the label sensor's options. */
  classes: readonly string[];
  /** The label published when nothing scores predictions.minScore (predictions.unknownLabel). */
  unknownLabel: string;
}

export interface HaDiscoveryMessage {
  topic: string;
  platform: HaPlatform;
  key: HaEntityKey;
  config: HaEntityConfig;
}

/** The JSON command a button or switch publishes on cmd (the request id names its origin). */
export const haCommandPayload = (cmd: CommandName): string => JSON.stringify(commandRequest(`homeassistant-${cmd}`, cmd));

/** "<head id> v<version>", the installed/latest version of the update entity. */
const HEAD_VERSION = (ref: string): string => `${ref}.id ~ ' v' ~ ${ref}.version`;
const UPDATE_TEMPLATE =
  `{% set a = ${HEAD_VERSION('value_json.active')} %}{% set s = value_json.shadow %}` +
  `{{ {'installed_version': a, 'latest_version': (${HEAD_VERSION('s.candidate')}) if s else a} | to_json }}`;
const PROBLEM_TEMPLATE = "{{ 'ON' if value_json.problems | length > 0 else 'OFF' }}";
const PROBLEM_ATTRIBUTES = "{{ {'problems': value_json.problems | map(attribute='message') | list} | to_json }}";
const latency = (p: 'p50' | 'p95') => `{{ value_json.latencyMs.total.${p} if value_json.latencyMs.total else None }}`;

/** The config of every entity, in HA_ENTITIES order. Unique ids and entity ids derive from the device id only. */
export function haDiscoveryMessages(input: HaDiscoveryInput): HaDiscoveryMessage[] {
  const { topics, deviceId } = input;
  const availability: HaAvailability[] = [
    { topic: topics.status, value_template: '{{ value_json.status }}', payload_available: 'online', payload_not_available: 'offline' },
  ];
  const common = (platform: HaPlatform, key: HaEntityKey, name: string): HaCommon => ({
    name,
    unique_id: `edgehead_${deviceId}_${key}`,
    default_entity_id: `${platform}.${haNodeId(deviceId).toLowerCase().replace(/-/g, '_')}_${key}`,
    device: input.device,
    origin: input.origin,
    availability,
  });
  const diagnostic = (key: HaEntityKey, name: string, fields: Omit<HaSensorConfig, Exclude<keyof HaCommon, 'icon'> | 'state_topic'>): HaSensorConfig => ({
    ...common('sensor', key, name),
    entity_category: 'diagnostic',
    state_topic: topics.telemetry,
    ...fields,
  });
  const button = (key: HaEntityKey & CommandName, name: string, icon: string, category?: 'config'): HaButtonConfig => ({
    ...common('button', key, name),
    ...(category ? { entity_category: category } : {}),
    icon,
    command_topic: topics.cmd,
    payload_press: haCommandPayload(key),
    qos: 1,
  });
  const configs: Record<HaEntityKey, HaEntityConfig> = {
    label: {
      ...common('sensor', 'label', 'Label'),
      icon: 'mdi:label-outline',
      state_topic: topics.state,
      device_class: 'enum',
      options: [...new Set([...input.classes, input.unknownLabel])],
    },
    confidence: {
      ...common('sensor', 'confidence', 'Confidence'),
      icon: 'mdi:percent-outline',
      state_topic: topics.predictions,
      value_template: '{{ (value_json.top[0].score * 100) | round(1) }}',
      unit_of_measurement: '%',
      state_class: 'measurement',
      suggested_display_precision: 1,
    },
    cpu_temperature: diagnostic('cpu_temperature', 'CPU temperature', {
      value_template: '{{ value_json.cpuTempC }}',
      device_class: 'temperature',
      unit_of_measurement: '°C',
      state_class: 'measurement',
    }),
    rss: diagnostic('rss', 'Memory (RSS)', { value_template: '{{ value_json.rssMB }}', device_class: 'data_size', unit_of_measurement: 'MB', state_class: 'measurement' }),
    latency_p50: diagnostic('latency_p50', 'Frame latency p50', { value_template: latency('p50'), device_class: 'duration', unit_of_measurement: 'ms', state_class: 'measurement' }),
    latency_p95: diagnostic('latency_p95', 'Frame latency p95', { value_template: latency('p95'), device_class: 'duration', unit_of_measurement: 'ms', state_class: 'measurement' }),
    failed_frames: diagnostic('failed_frames', 'Failed frames', { icon: 'mdi:image-broken-variant', value_template: '{{ value_json.frames.failed }}', state_class: 'total_increasing' }),
    queue_depth: diagnostic('queue_depth', 'Offline queue depth', { icon: 'mdi:tray-full', value_template: '{{ value_json.offlineQueue.depth }}', state_class: 'measurement' }),
    problem: {
      ...common('binary_sensor', 'problem', 'Problem'),
      entity_category: 'diagnostic',
      state_topic: topics.telemetry,
      value_template: PROBLEM_TEMPLATE,
      payload_on: 'ON',
      payload_off: 'OFF',
      device_class: 'problem',
      json_attributes_topic: topics.telemetry,
      json_attributes_template: PROBLEM_ATTRIBUTES,
    },
    capture: button('capture', 'Capture', 'mdi:camera'),
    rollback: button('rollback', 'Roll back head', 'mdi:undo', 'config'),
    promote: button('promote', 'Promote shadow head', 'mdi:check-decagram', 'config'),
    discard: button('discard', 'Discard shadow head', 'mdi:delete-outline', 'config'),
    schedule: {
      ...common('switch', 'schedule', 'Schedule'),
      entity_category: 'config',
      icon: 'mdi:timer-play-outline',
      command_topic: topics.cmd,
      state_topic: topics.schedule,
      payload_on: haCommandPayload('resume'),
      payload_off: haCommandPayload('pause'),
      state_on: 'running',
      state_off: 'paused',
      qos: 1,
    },
    head: {
      ...common('update', 'head', 'Head'),
      title: 'Classification head',
      state_topic: topics.headState,
      value_template: UPDATE_TEMPLATE,
      command_topic: topics.cmd,
      payload_install: haCommandPayload('promote'),
    },
    snapshot: { ...common('image', 'snapshot', 'Snapshot'), image_topic: topics.snapshot, content_type: 'image/jpeg' },
  };
  return HA_ENTITIES.map((e) => ({ topic: haConfigTopic(input.haPrefix, e.platform, deviceId, e.key), platform: e.platform, key: e.key, config: configs[e.key] }));
}
