import { Value } from '@sinclair/typebox/value';
import { type Config, ConfigSchema } from './schema';

/** The fully defaulted configuration, derived from the schema. */
export function defaultConfig(): Config {
  return Value.Default(ConfigSchema, {}) as Config;
}
