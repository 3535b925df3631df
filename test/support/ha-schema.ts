/**
 * What Home Assistant requires of a discovery config, per MQTT platform: written out from HA's documented schemas
 * (home-assistant.io/integrations/<platform>.mqtt and homeassistant/components/mqtt/*.py), independent of the
 * constructors in protocol/home-assistant.ts that the tests check with it.
 */
type Json = Record<string, unknown>;

/** HA's discovery topic rule (homeassistant/components/mqtt/discovery.py TOPIC_MATCHER), under the prefix "homeassistant". */
export const DISCOVERY_TOPIC = /^homeassistant\/(\w+)\/(?:[a-zA-Z0-9_-]+\/)?[a-zA-Z0-9_-]+\/config$/;

/** What HA requires of each platform's discovery config (its MQTT platform schemas and docs). */
export function haConfigErrors(platform: string, c: Json): string[] {
  const errors: string[] = [];
  const need = (...keys: string[]) => keys.forEach((k) => typeof c[k] !== 'string' || c[k] === '' ? errors.push(`${platform}: ${k} required`) : undefined);
  need('unique_id', 'name');
  const dev = c.device as Json | undefined;
  if (!dev || !Array.isArray(dev.identifiers) || dev.identifiers.length === 0) errors.push('device.identifiers required');
  if (!(c.origin as Json | undefined)?.name) errors.push('origin.name required');
  for (const a of (c.availability as Json[] | undefined) ?? []) if (typeof a.topic !== 'string') errors.push('availability[].topic required');
  if (c.entity_category !== undefined && !['diagnostic', 'config'].includes(c.entity_category as string)) errors.push('bad entity_category');
  switch (platform) {
    case 'sensor':
      need('state_topic');
      if (c.device_class === 'enum' || c.options !== undefined) {
        if (c.device_class !== 'enum') errors.push('options need device_class enum');
        if (!Array.isArray(c.options) || c.options.length === 0) errors.push('enum sensor needs options');
        if (c.state_class !== undefined || c.unit_of_measurement !== undefined) errors.push('enum sensor: no state_class or unit');
      }
      if (c.state_class !== undefined && !['measurement', 'total', 'total_increasing'].includes(c.state_class as string)) errors.push('bad state_class');
      if (c.device_class === 'temperature' && !['°C', '°F', 'K'].includes(c.unit_of_measurement as string)) errors.push('temperature unit');
      if (c.device_class === 'duration' && !['d', 'h', 'min', 's', 'ms', 'µs'].includes(c.unit_of_measurement as string)) errors.push('duration unit');
      break;
    case 'binary_sensor':
      need('state_topic');
      break;
    case 'button':
      need('command_topic');
      break;
    case 'switch':
      need('command_topic');
      break;
    case 'update':
      if (typeof c.state_topic !== 'string' && typeof c.latest_version_topic !== 'string') errors.push('update: state_topic or latest_version_topic required');
      if (c.payload_install !== undefined) need('command_topic');
      break;
    case 'image':
      if ((typeof c.image_topic === 'string') === (typeof c.url_topic === 'string')) errors.push('image: exactly one of image_topic, url_topic');
      if (c.url_topic !== undefined && c.content_type !== undefined) errors.push('image: content_type not with url_topic');
      break;
    default:
      errors.push(`unknown platform ${platform}`);
  }
  return errors;
}

