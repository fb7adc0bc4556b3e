// `hub service install|uninstall`: the hub as a systemd user service. The unit runs `hub serve` with
// absolute paths (this node, this checkout's bin/hub.js, the config), the PATH of the shell that
// installed it (so backends such as llama-server are found as they are there), and restarts on
// failure, but not on a config error (exit 2), which a restart cannot fix. systemctl is called only
// where it exists, and never makes the command fail: what to run by hand is printed instead.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { programFound } from '../config/command.js';
import { HUB_COMMAND, PACKAGE_ROOT, VERSION } from '../paths.js';
import { loadOrReport } from './check.js';
import type { Args } from './commands.js';
import { EXIT, say } from './output.js';

export const UNIT_NAME = 'modelhub.service';
/** The first line of every unit this command writes: only such a file is replaced or removed without --force. */
const MARKER = '# Written by `hub service install`';

export function unitDir(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(config, 'systemd', 'user');
}

/** A word of ExecStart=: quoted when needed; `%` (specifiers) and `$` (variables) are escaped by doubling. */
function execWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[\w@+=:,./-]+$/.test(word) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A whole `Environment=` assignment, quoted (systemd expands specifiers there, not variables). */
const environment = (name: string, value: string) => `"${`${name}=${value}`.replace(/%/g, '%%').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * PATH for the service: node's own folder first (so `${HUB}` and node scripts work), then every
 * absolute folder of the installing shell's PATH. A user manager's own PATH is short, and a model's
 * `cmd: llama-server ...` would not be found there.
 */
export function servicePath(path = process.env.PATH ?? ''): string {
  const dirs = [dirname(process.execPath), ...path.split(delimiter)].filter((d) => isAbsolute(d));
  return [...new Set(dirs)].join(delimiter);
}

export function unitText(configPath: string, path = servicePath()): string {
  const exec = [...HUB_COMMAND, 'serve', '--config', configPath].map(execWord).join(' ');
  return `${MARKER} (modelhub ${VERSION}); remove it with \`hub service uninstall\`.
[Unit]
Description=modelhub: one OpenAI-compatible URL in front of local model servers
Documentation=${encodeURI(`file://${join(PACKAGE_ROOT, 'docs', 'deploy.md')}`).replace(/%/g, '%%')}

[Service]
Type=simple
ExecStart=${exec}
# SIGHUP re-reads hub.yaml (systemctl --user reload modelhub).
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory=${dirname(configPath).replace(/%/g, '%%')}
Environment=${environment('PATH', path)}
# Keys and other \${env.NAME} values: NAME=value lines in this optional file.
EnvironmentFile=-%h/.config/modelhub/env
Restart=on-failure
RestartSec=5s
# Exit code 2 is a config error: restarting cannot fix it (run hub check).
RestartPreventExitStatus=2
# SIGTERM to the hub only: it drains requests and stops its backends itself; whatever is left at
# the timeout is killed.
KillMode=mixed
TimeoutStopSec=2min

[Install]
WantedBy=default.target
`;
}

const ENABLE = `systemctl --user enable --now ${UNIT_NAME}`;

/** Runs `systemctl --user <args>` if systemctl is on PATH: true when it succeeded, false when it failed (said why), undefined when absent. */
function systemctl(args: string[]): Promise<boolean | undefined> {
  if (!programFound('systemctl', process.env.PATH, process.cwd())) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile('systemctl', ['--user', ...args], { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve(true);
      const why = (stderr || err.message).trim().split('\n')[0];
      say.warn(`systemctl --user ${args.join(' ')} failed: ${why}`);
      resolve(false);
    });
  });
}

/** The unit's file, and whether it may be replaced or removed: written by us, or --force. */
function existing(file: string, force: boolean, verb: string): 'none' | 'ours' | 'refused' {
  if (!existsSync(file)) return 'none';
  if (force || readFileSync(file, 'utf8').startsWith(MARKER)) return 'ours';
  say.err(`${file} was not written by hub service install; ${verb} it yourself, or pass --force`);
  return 'refused';
}

export async function install(args: Args): Promise<number> {
  const config = loadOrReport(args.config);
  if (!config) return EXIT.usage; // a service that could never start: the problems are printed above
  const text = unitText(config.path);
  if (args.print) {
    process.stdout.write(text);
    return EXIT.ok;
  }
  const file = join(unitDir(), UNIT_NAME);
  const was = existing(file, args.force === true, 'replace');
  if (was === 'refused') return EXIT.failed;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  say.ok(`${was === 'ours' ? 'replaced' : 'wrote'} ${file}: hub serve --config ${config.path}`);
  const reloaded = await systemctl(['daemon-reload']);
  if (reloaded === undefined) say.info('systemctl is not on PATH (no systemd here?); on a machine with systemd the commands are:');
  else if (reloaded === false) say.info('then run: systemctl --user daemon-reload');
  say.info(`start it now and at every login: ${ENABLE}`);
  say.info('keep it running when you are logged out: loginctl enable-linger $USER');
  say.info(`its output: journalctl --user -u ${UNIT_NAME} -f (and ${join(config.log.dir, 'hub.log')}); a hub started with hub start must be stopped first (hub stop)`);
  return EXIT.ok;
}

export async function uninstall(args: Args): Promise<number> {
  const file = join(unitDir(), UNIT_NAME);
  const was = existing(file, args.force === true, 'remove');
  if (was === 'refused') return EXIT.failed;
  if (was === 'none') {
    say.info(`there is no ${file}; nothing to remove`);
    return EXIT.ok;
  }
  // Stopped and disabled while its file is still there (systemctl disable needs it).
  const stopped = await systemctl(['disable', '--now', UNIT_NAME]);
  rmSync(file);
  // What `disable` removes, in case systemctl could not: without it the next login would try to start it.
  rmSync(join(unitDir(), 'default.target.wants', UNIT_NAME), { force: true });
  say.ok(`removed ${file}`);
  if (stopped) {
    say.info('the service is stopped and disabled');
    await systemctl(['daemon-reload']);
  } else {
    say.info(`${stopped === undefined ? 'systemctl is not on PATH' : 'systemctl could not stop it'}; if the service still runs, stop it with: systemctl --user stop ${UNIT_NAME} && systemctl --user daemon-reload`);
  }
  return EXIT.ok;
}
