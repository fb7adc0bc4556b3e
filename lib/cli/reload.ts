// `hub reload`: POST /hub/api/reload and print the diff. A config with errors is refused by the hub
// (422, every error listed) and the running config stays: exit 2, as for `hub check`.
import { errorMessage } from './client.js';
import type { Args } from './commands.js';
import { CliError, plural } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say } from './output.js';

type Client = Awaited<ReturnType<typeof locateHub>>['client'];
interface ModelState { name: string; process: string; restart_pending: boolean }

/**
 * What a launch change did to each model, as the hub's status shows it right after the reload: one
 * busy model keeps serving and restarts once its requests finish; an idle one was stopped, and the
 * next request (or a start) runs it with the new settings.
 */
async function restartLines(client: Client, names: string[]): Promise<string[]> {
  const status = await client.call('GET', '/hub/api/status').catch(() => undefined);
  const models: ModelState[] = status?.status === 200 && Array.isArray(status.body?.models) ? status.body.models : [];
  const byName = new Map(models.map((m) => [m.name, m]));
  const groups = new Map<string, string[]>();
  for (const name of names) {
    const m = byName.get(name);
    const what = !m
      ? 'launch settings changed: restarted with them once idle'
      : m.restart_pending
        ? 'launch settings changed: still serving, restarts with them once its requests finish'
        : m.process === 'running' || m.process === 'starting'
          ? 'launch settings changed: restarted with them'
          : 'launch settings changed: stopped; the next request starts it with them';
    groups.set(what, [...(groups.get(what) ?? []), name]);
  }
  return [...groups].map(([what, list]) => `restarted: ${list.join(', ')} (${what})`);
}

interface Diff { added: string[]; removed: string[]; restarted: string[]; updated: string[]; unchanged: string[] }

export async function reload(a: Args): Promise<number> {
  const { client } = await locateHub(a);
  const answer = await client.call('POST', '/hub/api/reload');
  if (answer.status === 422) {
    const errors: unknown = answer.body?.error?.errors;
    const lines = Array.isArray(errors) ? errors.map(String) : [errorMessage(answer)];
    if (a.json) say.json(answer.body);
    for (const line of lines) say.err(line);
    say.info(`${plural(lines.length, 'problem')}; the hub keeps running the config it had. Fix ${lines.length === 1 ? 'it' : 'them'} (hub check shows ${lines.length === 1 ? 'it' : 'them'} too) and run hub reload again`);
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
  if (d.restarted.length) for (const line of await restartLines(client, d.restarted)) say.info(line);
  if (d.updated.length) say.info(`updated: ${d.updated.join(', ')} (applied now)`);
  return EXIT.ok;
}
