/**
 * The shared rules of the wire: identifiers, the topic prefix, URL schemes and size limits. The config schema
 * (config/schema.ts), the device, the operator tools and the docs all read them from here.
 */

/** Device ids, group names and head ids: one MQTT topic level, safe in a file name. */
const ID_CHARS = 'A-Za-z0-9_.-';
export const ID_MAX_LENGTH = 64;
export const ID_PATTERN = `^[${ID_CHARS}]{1,${ID_MAX_LENGTH}}$`;
export const ID_RE = new RegExp(ID_PATTERN);
export const ID_RULE = `must be 1 to ${ID_MAX_LENGTH} letters, digits, "_", "." or "-"`;
/** Topic words after the prefix that name a group or the fleet (protocol/topics.ts): no device may be called so. */
export const RESERVED_DEVICE_IDS: readonly string[] = ['groups', 'all'];
/** A device id: an id that is not one of the reserved topic words. */
export const DEVICE_ID_PATTERN = `^(?!(?:${RESERVED_DEVICE_IDS.join('|')})$)[${ID_CHARS}]{1,${ID_MAX_LENGTH}}$`;
export const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN);
export const DEVICE_ID_RULE = `${ID_RULE}, and must not be ${RESERVED_DEVICE_IDS.map((w) => `"${w}"`).join(' or ')} (topic words)`;
/** Every character an id may not hold (global: for String.replace, e.g. turning a host name into a device id). */
export const ID_INVALID_CHARS_RE = new RegExp(`[^${ID_CHARS}]`, 'g');

/** mqtt.topicPrefix: one or more topic levels, no wildcards, no leading, trailing or doubled "/". */
export const TOPIC_PREFIX_PATTERN = '^(?!/)(?!.*/$)(?!.*//)[^#+\\u0000]+$';
export const TOPIC_PREFIX_RE = new RegExp(TOPIC_PREFIX_PATTERN);
export const TOPIC_PREFIX_RULE = 'must be one or more topic levels without the MQTT wildcards # and +, and without a leading, trailing or doubled "/"';

/** Broker URLs. */
export const MQTT_URL_SCHEMES = ['mqtt', 'mqtts', 'ws', 'wss'] as const;
export const MQTT_URL_PATTERN = `^(${MQTT_URL_SCHEMES.join('|')})://`;
export const MQTT_URL_RE = new RegExp(MQTT_URL_PATTERN);
export const MQTT_URL_RULE = 'must start with mqtt://, mqtts://, ws:// or wss://';
export const TLS_URL_RE = /^(mqtts|wss):/;

/** Camera snapshot and model URLs. */
export const HTTP_URL_PATTERN = '^https?://';
export const HTTP_URL_RE = /^https?:\/\//i;
export const HTTP_URL_RULE = 'must start with http:// or https://';

/** Default of head.maxBytes: the largest head file or head/set payload accepted. */
export const HEAD_MAX_BYTES = 16 * 1024 * 1024;
/** Largest cmd payload the device parses (a request is a few hundred bytes). */
export const CMD_MAX_BYTES = 64 * 1024;
/** Largest head/state payload an operator tool parses. */
export const STATE_MAX_BYTES = 256 * 1024;
