declare const EDGEHEAD_VERSION: string | undefined;

/** The agent's version: injected by the bundler, read from package.json when running from source. */
export function agentVersion(): string {
  if (typeof EDGEHEAD_VERSION === 'string') return EDGEHEAD_VERSION;
  return (require('../package.json') as { version: string }).version;
}
