// A model named hub beside `hub logs --hub`, and `hub status` on an 80-column terminal with a long
// last error: the table fits.
import { stripVTControlCharacters as plain } from 'node:util';
import t from 'tap';
import { displayWidth } from '../lib/cli/table.js';
import { daemonSetup, hub, inPty } from './cli-support.js';
import { HUB_BIN, demo } from './helpers.js';

t.test('a model named hub, and hub status at 80 columns', async (t) => {
  const setup = await daemonSetup(t, '', `  hub: { backend: demo, cmd: "${demo()}" }\n  broken: { backend: demo, cmd: "${demo('--fail-start 7')}" }\n`);
  const cfg = ['--config', setup.config];
  const started = await hub(['start', ...cfg]);
  t.equal(started.code, 0, started.err);
  t.equal((await hub(['start-model', 'hub', ...cfg])).code, 0);
  const model = await hub(['logs', 'hub', ...cfg]);
  t.match(model.out, 'modelhub starting hub', 'hub logs hub: the model named hub wins');
  t.notMatch(model.out, '"msg"', 'not hub.log');
  t.match((await hub(['logs', '--hub', ...cfg])).out, /INFO hub process stopped -> starting/, 'hub logs --hub is still the hub\'s');
  t.equal((await hub(['start-model', 'broken', ...cfg])).code, 1);
  const narrow = inPty(t, `${process.execPath} ${HUB_BIN} status ${cfg.join(' ')}`, {}, 80);
  t.equal(await narrow.exited, 0, narrow.output());
  const lines = plain(narrow.output()).replace(/\r/g, '').split('\n').filter((l) => l && !l.startsWith('['));
  t.ok(lines.every((l) => displayWidth(l) <= 80), `the table of hub status fits 80 columns:\n${lines.join('\n')}`);
  t.match(lines.find((l) => l.startsWith('broken')), /exit 7: .*…$/, 'with the error cut');

  t.equal((await hub(['stop', ...cfg])).code, 0);
});

t.test('hub logs: a model name or --hub, one of the two', async (t) => {
  const r = await hub(['logs', '--hub', 'm']);
  t.equal(r.code, 2, 'both: usage error');
  t.match(r.err, '[err] give a model name or --hub, not both');
  const none = await hub(['logs']);
  t.equal(none.code, 2, 'neither: usage error');
  t.match(none.err, "[err] name the model whose log to show (see hub status), or pass --hub for the hub's own log");
});
