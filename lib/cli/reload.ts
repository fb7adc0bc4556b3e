// `hub reload`: POST /hub/api/reload and print the diff. A config with errors is refused by the hub
// (422, every error listed) and the running config stays: exit 2, as for `hub check`.
import { errorMessage } from './client.js';
import type { Args } from './commands.js';
import { CliError, plural } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say } from './output.js';

interface Diff { added: string[]; removed: string[]; restarted: string[]; updated: string[]; unchanged: string[] }

export async function reload(a: Args): Promise<number> {
  const { client } = await locateHub(a);
  const answer = await client.call('POST', '/hub/api/reload');
  if (answer.status === 422) {
    const errors: unknown = answer.body?.error?.errors;
    const lines = Array.isArray(errors) ? errors.map(String) : [errorMessage(answer)];
    if (a.json) say.json(answer.body);
    for (const line of lines) say.err(line);
    say.info(`${plural(lines.length, 'problem')}; the hub keeps running the config it had. Fix them (hub check shows them too) and run hub reload again`);
    return EXIT.usage;
  }
  if (answer.status !== 200) throw new CliError(EXIT.failed, `the reload failed: ${errorMessage(answer)}`);
  const d = answer.body as Diff;
  if (a.json) {
    say.json(d);
    return EXIT.ok;
  }
  const changed = d.added.length + d.removed.length + d.restarted.length + d.updated.length;
  say.ok(changed ? `config reloaded: ${plural(changed, 'model')} changed, ${d.unchanged.length} unchanged` : `config reloaded: no changes (${plural(d.unchanged.length, 'model')} unchanged)`);
  if (d.added.length) say.info(`added: ${d.added.join(', ')}`);
  if (d.removed.length) say.info(`removed: ${d.removed.join(', ')} (drained, then stopped)`);
  if (d.restarted.length) say.info(`restarted: ${d.restarted.join(', ')} (launch settings changed: will restart when idle)`);
  if (d.updated.length) say.info(`updated: ${d.updated.join(', ')} (applied now)`);
  return EXIT.ok;
}
