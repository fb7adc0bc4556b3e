// What a config's checker says about a hub.yaml text: one line per problem ("hub.yaml:3: path: what"),
// or nothing when it is valid.
import { ConfigError } from '../../lib/config/errors.js';
import { parseConfig } from '../../lib/config/load.js';

export function configProblems(yaml: string): string[] {
  try {
    parseConfig(yaml, '/etc/modelhub/hub.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}
