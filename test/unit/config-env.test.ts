import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEnvOverrides, envVarName, listEnvVars, NON_CONFIG_ENV_VARS, parseEnvValue, schemaLeaves } from '../../config/env';
import { checkConfig, ConfigError, loadConfig } from '../../config/load';
import { ConfigSchema } from '../../config/schema';

function errorsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig({ env });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.errors];
  }
  assert.fail('loadConfig accepted the environment');
}

test('names: EDGEHEAD_ + upper snake case of the key path, camelCase split', () => {
  assert.equal(envVarName(['schedule', 'intervalMs']), 'EDGEHEAD_SCHEDULE_INTERVAL_MS');
  assert.equal(envVarName(['mqtt', 'tls', 'rejectUnauthorized']), 'EDGEHEAD_MQTT_TLS_REJECT_UNAUTHORIZED');
  assert.equal(envVarName(['device', 'groups']), 'EDGEHEAD_DEVICE_GROUPS');
  assert.equal(envVarName(['offline', 'maxMB']), 'EDGEHEAD_OFFLINE_MAX_MB');
  assert.equal(envVarName(['predictions', 'topK']), 'EDGEHEAD_PREDICTIONS_TOP_K');
  assert.equal(envVarName(['stateDir']), 'EDGEHEAD_STATE_DIR');
});

test('listEnvVars: derived from the schema — one per setting except version, unique names', () => {
  const vars = listEnvVars();
  const leaves = schemaLeaves(ConfigSchema).filter((l) => l.path.join('.') !== 'version');
  assert.deepEqual(
    vars.map((v) => v.key),
    leaves.map((l) => l.path.join('.')),
  );
  assert.equal(new Set(vars.map((v) => v.name)).size, vars.length);
  assert.ok(!vars.some((v) => v.key === 'version'));
  const interval = vars.find((v) => v.name === 'EDGEHEAD_SCHEDULE_INTERVAL_MS');
  assert.deepEqual(interval && { path: interval.path, type: interval.type }, { path: ['schedule', 'intervalMs'], type: 'an integer >= 50' });
  assert.equal(vars.find((v) => v.key === 'mqtt.password')?.secret, true);
  assert.ok(vars.length >= 50, `only ${vars.length} variables`);
});

test('every type is parsed from its string form', () => {
  const c = loadConfig({
    env: {
      EDGEHEAD_SCHEDULE_INTERVAL_MS: '250', // integer
      EDGEHEAD_PREDICTIONS_MIN_SCORE: '0.25', // number
      EDGEHEAD_OFFLINE_MAX_MB: '1e2', // number, exponent
      EDGEHEAD_MQTT_TLS_REJECT_UNAUTHORIZED: 'false', // boolean
      EDGEHEAD_PREDICTIONS_ONLY_ON_CHANGE: '1',
      EDGEHEAD_MQTT_CLEAN_SESSION: 'TRUE',
      EDGEHEAD_MQTT_URL: 'mqtts://broker.example:8883', // string
      EDGEHEAD_SOURCE_TYPE: 'webcam', // a broker elsewhere needs the source chosen
      EDGEHEAD_BACKEND_NAME: 'cpu', // union of literals
      EDGEHEAD_PREDICTIONS_QOS: '2', // union of number literals
      EDGEHEAD_BACKEND_THREADS: '4', // "auto" | integer
      EDGEHEAD_DEVICE_GROUPS: 'kitchen, floor-1', // comma list
      EDGEHEAD_SOURCE_STREAM_ARGS: '["-i", "/dev/video1", "-vf", "scale=320:240,fps=2"]', // JSON array
      EDGEHEAD_EXTRACTOR_VALUE_RANGE: '[-1, 1]', // tuple
    },
  });
  assert.equal(c.schedule.intervalMs, 250);
  assert.equal(c.predictions.minScore, 0.25);
  assert.equal(c.offline.maxMB, 100);
  assert.equal(c.mqtt.tls.rejectUnauthorized, false);
  assert.equal(c.predictions.onlyOnChange, true);
  assert.equal(c.mqtt.cleanSession, true);
  assert.equal(c.mqtt.url, 'mqtts://broker.example:8883');
  assert.equal(c.backend.name, 'cpu');
  assert.equal(c.predictions.qos, 2);
  assert.equal(c.backend.threads, 4);
  assert.deepEqual(c.device.groups, ['kitchen', 'floor-1']);
  assert.deepEqual(c.source.stream.args, ['-i', '/dev/video1', '-vf', 'scale=320:240,fps=2']);
  assert.deepEqual(c.extractor.valueRange, [-1, 1]);
  assert.equal(loadConfig({ env: { EDGEHEAD_BACKEND_THREADS: 'auto' } }).backend.threads, 'auto');
  assert.deepEqual(loadConfig({ env: { EDGEHEAD_DEVICE_GROUPS: '["a","b"]' } }).device.groups, ['a', 'b']);
  assert.deepEqual(loadConfig({ env: { EDGEHEAD_DEVICE_GROUPS: '' } }).device.groups, []);
});

test('env overrides the file, and the file keeps what env does not set', () => {
  const r = checkConfig({ data: { version: 1, schedule: { intervalMs: 5000, jitterMs: 7 } }, env: { EDGEHEAD_SCHEDULE_INTERVAL_MS: '60' } });
  assert.deepEqual(r.errors, []);
  assert.equal(r.config?.schedule.intervalMs, 60);
  assert.equal(r.config?.schedule.jitterMs, 7);
  assert.equal(r.envSources.get('schedule.intervalMs'), 'EDGEHEAD_SCHEDULE_INTERVAL_MS');
});

test('unparsable values: the variable, what is expected, the value, and the key path', () => {
  const errors = errorsOf({
    EDGEHEAD_SCHEDULE_INTERVAL_MS: 'fast',
    EDGEHEAD_PREDICTIONS_MIN_SCORE: '0,5',
    EDGEHEAD_MQTT_CLEAN_SESSION: 'yes',
    EDGEHEAD_BACKEND_NAME: 'gpu',
    EDGEHEAD_PREDICTIONS_QOS: 'high',
    EDGEHEAD_BACKEND_THREADS: 'many',
    EDGEHEAD_SOURCE_STREAM_ARGS: '-i,/dev/video0',
    EDGEHEAD_DEVICE_GROUPS: '["a",',
  });
  assert.deepEqual(errors, [
    'EDGEHEAD_BACKEND_NAME: must be one of: wasm, cpu (got "gpu") — sets backend.name',
    'EDGEHEAD_BACKEND_THREADS: must be "auto" or an integer from 1 to 64 (got "many") — sets backend.threads',
    'EDGEHEAD_DEVICE_GROUPS: must be a valid JSON array (got "[\\"a\\",") — sets device.groups',
    'EDGEHEAD_MQTT_CLEAN_SESSION: must be true or false (or 1 or 0) (got "yes") — sets mqtt.cleanSession',
    'EDGEHEAD_PREDICTIONS_MIN_SCORE: must be a number (got "0,5") — sets predictions.minScore',
    'EDGEHEAD_PREDICTIONS_QOS: must be one of: 0, 1, 2 (got "high") — sets predictions.qos',
    'EDGEHEAD_SCHEDULE_INTERVAL_MS: must be an integer (got "fast") — sets schedule.intervalMs',
    'EDGEHEAD_SOURCE_STREAM_ARGS: must be a list of strings as a JSON array, e.g. ["a", "b"] (got "-i,/dev/video0") — sets source.stream.args',
  ]);
});

test('parsed but invalid values are reported at the key path, naming the variable', () => {
  assert.deepEqual(errorsOf({ EDGEHEAD_SCHEDULE_INTERVAL_MS: '0', EDGEHEAD_DEVICE_GROUPS: 'ok,not ok' }), [
    'device.groups[1]: must be 1 to 64 letters, digits, "_", "." or "-" (got "not ok" from EDGEHEAD_DEVICE_GROUPS)',
    'schedule.intervalMs: must be >= 50 (got 0 from EDGEHEAD_SCHEDULE_INTERVAL_MS)',
  ]);
});

test('no coercion beyond the plain spelling of the type', () => {
  const integer = listEnvVars().find((v) => v.key === 'schedule.intervalMs')!.schema;
  for (const bad of ['1.5', '1e3', '0x10', '', ' ', '12abc', 'Infinity']) assert.equal(parseEnvValue(integer, bad).ok, false, bad);
  const bool = listEnvVars().find((v) => v.key === 'mqtt.cleanSession')!.schema;
  for (const bad of ['yes', 'on', '2', '']) assert.equal(parseEnvValue(bool, bad).ok, false, bad);
  const str = listEnvVars().find((v) => v.key === 'mqtt.username')!.schema;
  assert.deepEqual(parseEnvValue(str, ' spaced '), { ok: true, value: ' spaced ' });
});

test('secrets from the environment are applied and never echoed', () => {
  const c = loadConfig({ env: { EDGEHEAD_MQTT_PASSWORD: 's3cret-value' } });
  assert.equal(c.mqtt.password, 's3cret-value');
  const errors = errorsOf({ EDGEHEAD_MQTT_PASSWORD: 's3cret-value', EDGEHEAD_SCHEDULE_INTERVAL_MS: '1' });
  assert.ok(!errors.join('\n').includes('s3cret-value'));
});

test('unknown EDGEHEAD_ variables are errors with a suggestion; the non-config ones are allowed', () => {
  assert.deepEqual(errorsOf({ EDGEHEAD_SCHEDULE_INTERVAL: '1000', EDGEHEAD_MQTT_URLL: 'mqtt://x', EDGEHEAD_NONSENSE_THING: '1', PATH: '/bin', edgehead_lower: 'x' }), [
    'EDGEHEAD_MQTT_URLL: unknown setting (did you mean EDGEHEAD_MQTT_URL?)',
    'EDGEHEAD_NONSENSE_THING: unknown setting (run "edgehead config env" for the list)',
    'EDGEHEAD_SCHEDULE_INTERVAL: unknown setting (did you mean EDGEHEAD_SCHEDULE_INTERVAL_MS?)',
  ]);
  const allowed = Object.fromEntries(Object.keys(NON_CONFIG_ENV_VARS).map((k) => [k, k === 'EDGEHEAD_LOG_LEVEL' ? 'debug' : k === 'EDGEHEAD_LOG_FORMAT' ? 'json' : '/x']));
  assert.ok(Object.keys(allowed).includes('EDGEHEAD_WASM_DIR') && Object.keys(allowed).includes('EDGEHEAD_CONFIG'));
  const c = loadConfig({ env: allowed });
  // EDGEHEAD_LOG_LEVEL / _FORMAT are also the derived names of log.level / log.format.
  assert.equal(c.log.level, 'debug');
  assert.equal(c.log.format, 'json');
});

test('an override under a section the file got wrong does not crash; the file error is reported', () => {
  const target: Record<string, unknown> = { schedule: 5 };
  const r = applyEnvOverrides(target, { EDGEHEAD_SCHEDULE_INTERVAL_MS: '100' });
  assert.deepEqual(r.errors, []);
  assert.equal(target.schedule, 5);
  assert.deepEqual(checkConfig({ data: { version: 1, schedule: 5 }, env: { EDGEHEAD_SCHEDULE_INTERVAL_MS: '100' } }).errors, ['schedule: must be a mapping of settings (got 5)']);
});
