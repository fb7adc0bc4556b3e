// Running the hub for good: `hub service install|uninstall` (the unit's content, systemd's own parser
// where it is installed, systemctl present, failing or absent), and the Dockerfile, which must run
// the same commands as the README and docs/deploy.md show.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseDocument } from 'yaml';
import { loadConfig, parseConfig } from '../lib/config/load.js';
import { programFound } from '../lib/config/command.js';
import { exposureWarning } from '../lib/cli/serve.js';
import { unitText } from '../lib/cli/service.js';
import { hub } from './cli-support.js';
import { HUB_BIN, PACKAGE_ROOT, tempDir } from './helpers.js';

const run = promisify(execFile);
const UNIT = 'modelhub.service';

/** A home with a valid hub.yaml in a folder whose name needs quoting in a unit (space, %, $). */
function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const home = join(dir, 'home');
  const configDir = join(dir, 'my models 100% $HOME');
  mkdirSync(home);
  mkdirSync(configDir);
  const config = join(configDir, 'hub.yaml');
  writeFileSync(config, `state_dir: ${join(dir, 'state')}\nmodels:\n  demo-small: { backend: demo, cmd: "\${HUB} demo-model --port \${PORT}" }\n`);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const calls = join(dir, 'systemctl-calls');
  /** A systemctl on PATH that records its arguments and exits with `code`. */
  const fakeSystemctl = (code: number) => {
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$@" >> '${calls}'\n${code ? 'echo "Failed to connect to bus: No medium found" >&2\n' : ''}exit ${code}\n`);
    chmodSync(join(bin, 'systemctl'), 0o755);
  };
  const unitFile = join(home, '.config', 'systemd', 'user', UNIT);
  const env = { HOME: home, XDG_CONFIG_HOME: '', PATH: [bin, '/nonexistent', 'relative/dir'].join(delimiter) };
  return { dir, home, config, bin, calls, fakeSystemctl, unitFile, env, recorded: () => (existsSync(calls) ? readFileSync(calls, 'utf8') : '') };
}

const field = (unit: string, key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);

t.test('hub service install --print: a unit that runs hub serve by absolute paths and restarts on failure', async (t) => {
  const s = setup(t);
  const printed = await hub(['service', 'install', '--print', '--config', s.config], { env: s.env });
  t.equal(printed.code, 0, printed.err);
  const unit = printed.out;
  t.notOk(existsSync(s.unitFile), '--print writes nothing');
  t.match(unit, /^# Written by `hub service install`/);
  const quoted = s.config.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  t.same(field(unit, 'ExecStart'), [`${process.execPath} ${HUB_BIN} serve --config "${quoted}"`], 'node, bin/hub.js and the config, absolute; the config quoted, % and $ escaped');
  t.same(field(unit, 'Restart'), ['on-failure']);
  t.same(field(unit, 'RestartPreventExitStatus'), ['2'], 'no restart loop on a config error');
  t.same(field(unit, 'KillMode'), ['mixed'], 'SIGTERM to the hub alone: it stops its backends itself');
  t.same(field(unit, 'Type'), ['simple']);
  t.same(field(unit, 'WorkingDirectory'), [dirname(s.config).replace(/%/g, '%%')]);
  t.same(field(unit, 'Environment'), [`"PATH=${[dirname(process.execPath), s.bin, '/nonexistent'].join(delimiter)}"`], 'node\'s folder, then the absolute folders of PATH');
  t.same(field(unit, 'EnvironmentFile'), ['-%h/.config/modelhub/env']);
  t.same(field(unit, 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
  t.same(field(unit, 'WantedBy'), ['default.target']);
  t.same([...unit.matchAll(/^\[(\w+)\]$/gm)].map((m) => m[1]), ['Unit', 'Service', 'Install']);

  // systemd's own parser, where it is installed (Debian's systemd package); the checks above run either way.
  if (programFound('systemd-analyze', process.env.PATH, process.cwd())) {
    const file = join(s.dir, UNIT);
    writeFileSync(file, unit);
    const runtime = join(s.dir, 'runtime');
    mkdirSync(runtime, { mode: 0o700 });
    const verify = await run('systemd-analyze', ['--user', 'verify', file], { env: { ...process.env, HOME: s.home, XDG_RUNTIME_DIR: runtime } }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    t.equal(verify.code, 0, `systemd-analyze --user verify accepts it: ${verify.out}`);
    t.notMatch(verify.out, new RegExp(UNIT.replace('.', '\\.')), 'without a warning about it');
  } else {
    t.comment('systemd-analyze is not installed: the unit was checked field by field only');
  }
});

t.test('hub service install writes the unit and runs systemctl only where it exists', async (t) => {
  const s = setup(t);
  const without = await hub(['service', 'install', '--config', s.config], { env: s.env });
  t.equal(without.code, 0, `no systemctl is no failure: ${without.err}`);
  t.ok(existsSync(s.unitFile), `written to ${s.unitFile}`);
  t.match(without.out, /systemctl is not on PATH[\s\S]*systemctl --user enable --now modelhub\.service/, 'it says what to run');

  s.fakeSystemctl(0);
  const again = await hub(['service', 'install', '--config', s.config], { env: s.env });
  t.equal(again.code, 0);
  t.match(again.out, /\[ok\] replaced /, 'its own unit is replaced');
  t.equal(s.recorded(), '--user daemon-reload\n', 'systemctl --user daemon-reload, nothing else (starting is yours to choose)');

  writeFileSync(s.unitFile, '[Service]\nExecStart=/usr/bin/true\n');
  const foreign = await hub(['service', 'install', '--config', s.config], { env: s.env });
  t.equal(foreign.code, 1, 'a unit someone else wrote is not replaced');
  t.match(foreign.err, /was not written by hub service install; replace it yourself, or pass --force/);
  t.equal((await hub(['service', 'install', '--force', '--config', s.config], { env: s.env })).code, 0);
  t.match(readFileSync(s.unitFile, 'utf8'), /^# Written by/, '--force replaces it');

  writeFileSync(s.config, 'models:\n  x: { cmd: "s" }\n');
  const bad = await hub(['service', 'install', '--print', '--config', s.config], { env: s.env });
  t.equal(bad.code, 2, 'a config with errors gives no unit');
  t.notMatch(bad.out, /\[Service\]/, 'nothing printed but the problem');
  t.match(bad.err, /does not pass \$\{PORT\}/);
});

t.test('hub service uninstall stops, disables and removes; without a working systemctl it says what to run', async (t) => {
  const s = setup(t);
  const wants = join(dirname(s.unitFile), 'default.target.wants');
  /** An installed, enabled unit, as install and `systemctl enable` leave it (written here: each hub run costs a second of CPU). */
  const installed = () => {
    mkdirSync(wants, { recursive: true });
    writeFileSync(s.unitFile, unitText(s.config));
    symlinkSync(s.unitFile, join(wants, UNIT));
  };
  s.fakeSystemctl(0);
  installed();
  const removed = await hub(['service', 'uninstall'], { env: s.env });
  t.equal(removed.code, 0, removed.err);
  t.notOk(existsSync(s.unitFile), 'the unit is gone');
  t.equal(s.recorded(), `--user disable --now ${UNIT}\n--user daemon-reload\n`, 'stopped and disabled while the file was there, then systemd reloaded');
  t.match(removed.out, /stopped and disabled/);
  const nothing = await hub(['service', 'uninstall'], { env: s.env });
  t.equal(nothing.code, 0);
  t.match(nothing.out, /nothing to remove/);

  s.fakeSystemctl(1);
  installed();
  const failing = await hub(['service', 'uninstall'], { env: s.env });
  t.equal(failing.code, 0, 'a failing systemctl fails nothing');
  t.match(failing.err, /systemctl --user disable --now modelhub\.service failed: Failed to connect to bus/);
  t.match(failing.out, /systemctl could not stop it; if the service still runs, stop it with: systemctl --user stop modelhub\.service/);
  t.notOk(existsSync(s.unitFile));
  t.notOk(existsSync(join(wants, UNIT)), 'the enable link is removed too, so the next login does not start it');

  writeFileSync(s.unitFile, unitText(s.config));
  const absent = await hub(['service', 'uninstall'], { env: { ...s.env, PATH: '/nonexistent' } });
  t.equal(absent.code, 0);
  t.notOk(existsSync(s.unitFile));
  t.match(absent.out, /systemctl is not on PATH; if the service still runs, stop it with: systemctl --user stop modelhub\.service/);
});

/** Dockerfile instructions, continuation lines joined. */
function instructions(text: string): Array<{ op: string; args: string }> {
  return text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const [op, ...rest] = l.split(/\s+/);
    return { op: op.toUpperCase(), args: rest.join(' ') };
  });
}

t.test('the Dockerfile runs the README\'s commands, and the README\'s docker commands fit the Dockerfile', async (t) => {
  const read = (f: string) => readFileSync(join(PACKAGE_ROOT, f), 'utf8');
  const dockerfile = instructions(read('Dockerfile'));
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines: { node: string } };
  const readme = read('README.md');
  const deploy = read('docs/deploy.md');

  const froms = dockerfile.filter((i) => i.op === 'FROM').map((i) => i.args.split(' ')[0]);
  t.ok(froms.length > 0 && froms.every((f) => f === 'node:20-bookworm-slim'), 'Debian slim with Node 20');
  t.ok(Number(pkg.engines.node.match(/\d+/)![0]) <= 20, `Node 20 satisfies engines.node (${pkg.engines.node})`);

  // Install and build: the README's quick start is `npm install`, which builds through prepare; the
  // image installs from the lockfile (npm ci), then runs that prepare script itself.
  t.match(readme, /^npm install +# installs and builds/m, 'the README installs with npm install');
  t.equal(pkg.scripts.prepare, 'npm run build');
  const runs = dockerfile.filter((i) => i.op === 'RUN').map((i) => i.args);
  t.ok(runs.includes(`npm ci --ignore-scripts --no-audit --no-fund && ${pkg.scripts.prepare}`), 'the build stage installs, then runs the prepare script (the build) as npm install would');
  t.ok(runs.some((r) => /^npm ci --omit=dev --ignore-scripts\b/.test(r)), 'the image keeps production dependencies only');

  // Start: what `npm start` runs, which the README's quick start uses.
  t.match(readme, /^npm start +# runs `hub serve`/m);
  const cmd = JSON.parse(dockerfile.filter((i) => i.op === 'CMD').at(-1)!.args) as string[];
  t.same(cmd, pkg.scripts.start.split(' '), `CMD is npm start's command (${pkg.scripts.start})`);
  t.same(JSON.parse(dockerfile.find((i) => i.op === 'ENTRYPOINT')!.args), ['/usr/bin/tini', '--'], 'tini reaps what backends leave behind');
  t.ok(dockerfile.some((i) => i.op === 'USER' && i.args === 'node'), 'not root');

  const env = dockerfile.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
  const configPath = /HUB_CONFIG=(\S+)/.exec(env)![1];
  const exposed = dockerfile.find((i) => i.op === 'EXPOSE')!.args;
  // The docker commands: the same in README and deploy.md, mounting the config where the image reads it.
  const dockerLines = (text: string) => text.split('\n').filter((l) => /^docker (build|run) /.test(l));
  t.same(dockerLines(readme), dockerLines(deploy), 'README and docs/deploy.md show the same docker commands');
  const runLine = dockerLines(readme).find((l) => l.startsWith('docker run '))!;
  t.match(runLine, `:${configPath}:ro"`, `the config is mounted at $HUB_CONFIG (${configPath})`);
  t.match(runLine, new RegExp(`-p (127\\.0\\.0\\.1:)?\\d+:${exposed} `), `the published port is the exposed one (${exposed})`);
  t.match(dockerLines(readme)[0], /^docker build -t modelhub \.$/);
  t.match(runLine, / modelhub$/);

  // What the image copies exists here, and the build context does not carry this machine's builds.
  const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  t.ok(['node_modules', 'dist', '.git'].every((p) => ignored.includes(p)), '.dockerignore leaves out node_modules, dist and .git');
  for (const copy of dockerfile.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
    const sources = copy.args.split(' ').slice(0, -1).filter((p) => p !== '.');
    for (const source of sources) {
      t.ok(existsSync(join(PACKAGE_ROOT, source)), `COPY ${source}: it exists`);
      t.notOk(ignored.includes(source), `COPY ${source}: not left out by .dockerignore`);
    }
  }
  t.ok(dockerfile.some((i) => i.op === 'COPY' && i.args === '--from=build /app/dist/lib ./dist/lib'), 'the compiled hub comes from the build stage');
});

t.test('the container config of docs/deploy.md listens on 0.0.0.0 with keys; without them the hub warns', async (t) => {
  const deploy = readFileSync(join(PACKAGE_ROOT, 'docs', 'deploy.md'), 'utf8');
  const yaml = [...deploy.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes('0.0.0.0'))!;
  t.ok(parseDocument(yaml).errors.length === 0);
  const keyed = parseConfig(yaml, '/etc/modelhub/hub.yaml', { env: { HUB_API_KEY: 'sk-a', HUB_ADMIN_KEY: 'sk-b' } });
  t.equal(keyed.listen.host, '0.0.0.0');
  t.equal(exposureWarning(keyed), undefined, 'with keys: no warning');
  const open = parseConfig(yaml, '/etc/modelhub/hub.yaml', { env: { HUB_API_KEY: '', HUB_ADMIN_KEY: '' } });
  t.match(exposureWarning(open), /^NOT PROTECTED: listening on 0\.0\.0\.0:8080 without keys/, 'keys set to "" leave it open, and it says so');
  t.throws(() => parseConfig(yaml, '/etc/modelhub/hub.yaml', { env: {} }), /\$\{env\.HUB_API_KEY\} is not set/, 'an unset key is a config error');
  t.ok(loadConfig(join(PACKAGE_ROOT, 'hub.yaml')));
});
