// Every `hub` command: its yargs usage, options and examples, and the module that runs it (loaded on
// demand, so that `hub demo-model` does not pull in the HTTP stack). main.ts registers this table
// with yargs, and the docs test checks docs/cli.md against it, so the two cannot drift.
import type { Options, PositionalOptions } from 'yargs';
import { demoOptionTable } from './demo-options.js';
import { CliError } from './errors.js';
import { EXIT } from './output.js';

export type Args = Record<string, unknown> & { config?: string; url?: string; apiKey?: string; json?: boolean; color?: boolean };

export interface CommandSpec {
  /** yargs usage: the name, then positionals (`status [names..]`). */
  usage: string;
  describe: string;
  positionals?: Record<string, PositionalOptions>;
  options: Record<string, Options>;
  examples: Array<[string, string]>;
  /** The exit code; undefined for a command that goes on running (demo-model serves until stopped). */
  run(args: Args): Promise<number | undefined>;
}

// ---- options shared by several commands (each command lists only those that apply to it) ----------

const config: Record<string, Options> = {
  config: { type: 'string', describe: 'path to hub.yaml (default: $HUB_CONFIG, ./hub.yaml, ~/.config/modelhub/hub.yaml)' },
};
const hub: Record<string, Options> = {
  ...config,
  url: { type: 'string', describe: 'URL of a running hub (default: $HUB_URL, then the runtime file in state_dir, then listen in the config)' },
  'api-key': { type: 'string', describe: 'admin key, sent as a Bearer token (default: $HUB_ADMIN_KEY, then $HUB_API_KEY)' },
};
const listen: Record<string, Options> = {
  host: { type: 'string', describe: 'address to listen on, instead of listen.host in the config' },
  port: { type: 'number', describe: 'port to listen on, instead of listen.port in the config (0: any free port)' },
};
const json: Record<string, Options> = { json: { type: 'boolean', default: false, describe: 'print JSON instead of lines for people' } };
const color: Record<string, Options> = { color: { type: 'boolean', default: true, describe: 'colour on a terminal; --no-color (or $NO_COLOR) turns it off' } };

const lazy = <M>(load: () => Promise<M>, call: (m: M, a: Args) => number | undefined | Promise<number | undefined>) => async (a: Args) => call(await load(), a);

const modelVerb = (verb: 'start' | 'stop' | 'load' | 'unload', describe: string, example: string): CommandSpec => ({
  usage: `${verb}-model <names..>`,
  describe,
  positionals: { names: { type: 'string', array: true, describe: 'model names (as in hub status)' } },
  options: { ...hub, wait: { type: 'boolean', default: true, describe: 'wait until each model reaches the state, showing progress; --no-wait returns once the hub accepted' }, ...json },
  examples: [[`hub ${verb}-model ${example}`, describe]],
  run: lazy(() => import('./model-verbs.js'), (m, a) => m.modelVerb(verb, a)),
});

export const COMMANDS: CommandSpec[] = [
  {
    usage: 'serve',
    describe: 'run the hub in the foreground (logs to stdout and hub.log); Ctrl-C stops it and every model',
    options: { ...config, ...listen, watch: { type: 'boolean', default: false, describe: 'reload when hub.yaml changes' } },
    examples: [['hub serve', 'serve ./hub.yaml'], ['hub serve --config ~/hub.yaml --watch', 'serve another config, reloading on every edit'], ['hub serve --port 9090', 'serve on port 9090 whatever listen says']],
    // --host and --port are checked before the HTTP stack loads: a usage error costs no start-up.
    run: async (a) => { const listen = listenArgs(a); return (await import('./serve.js')).serve(a.config, { watch: a.watch as boolean, ...listen }); },
  },
  {
    usage: 'start',
    describe: 'start the hub in the background, wait until it and its preload models are up, print its URL',
    options: { ...config, ...listen, 'api-key': hub['api-key'], timeout: { type: 'string', default: '2m', describe: 'how long to wait for the hub and its preload models' }, ...json },
    examples: [['hub start', 'start the hub of ./hub.yaml'], ['hub start --config ~/hub.yaml', 'start another config'], ['hub start --host 0.0.0.0 --port 9090', 'listen on every interface, port 9090']],
    run: async (a) => { listenArgs(a); return (await import('./daemon.js')).start(a); },
  },
  {
    usage: 'stop',
    describe: 'stop the running hub gracefully (in-flight requests finish, every model stops) and wait until it is gone',
    options: { ...hub, timeout: { type: 'string', default: '1m', describe: 'how long to wait before SIGTERM, then SIGKILL' } },
    examples: [['hub stop', 'stop the hub found through ./hub.yaml'], ['hub stop --timeout 10s', 'give it 10 s before signals']],
    run: lazy(() => import('./daemon.js'), (m, a) => m.stop(a)),
  },
  {
    usage: 'reload',
    describe: 're-read hub.yaml in the running hub and print what changed',
    options: { ...hub, ...json },
    examples: [['hub reload', 'apply the edited hub.yaml']],
    run: lazy(() => import('./reload.js'), (m, a) => m.reload(a)),
  },
  {
    usage: 'status [names..]',
    describe: 'a table of every model (or the named ones) and the group usage',
    positionals: { names: { type: 'string', array: true, describe: 'only these models' } },
    options: { ...hub, usage: { type: 'boolean', default: false, describe: 'requests, errors, tokens and cold starts per model instead' }, ...json, ...color },
    examples: [['hub status', 'every model'], ['hub status demo-small --json', 'one model, as the API answers'], ['hub status --usage', 'what each model served']],
    run: lazy(() => import('./status.js'), (m, a) => m.status(a)),
  },
  {
    usage: 'watch',
    describe: 'the status table, redrawn live from the event stream until Ctrl-C',
    options: { ...hub, interval: { type: 'string', default: '1s', describe: 'how often to refresh (idle countdowns; polling when the stream drops)' }, ...color },
    examples: [['hub watch', 'watch every model'], ['hub watch --interval 5s', 'refresh every 5 s']],
    run: lazy(() => import('./watch.js'), (m, a) => m.watch(a)),
  },
  modelVerb('start', 'start models (their process) and wait until they are ready', 'demo-small demo-medium'),
  modelVerb('stop', 'stop models (their process), draining their requests first', 'demo-small'),
  modelVerb('load', 'start models and load them into memory', 'demo-large'),
  modelVerb('unload', 'free models\' memory; their processes stay (when the backend can)', 'demo-large'),
  {
    usage: 'logs [name]',
    describe: 'print the end of a model\'s log (or with --hub the hub\'s own), or follow it (across rotations) until Ctrl-C',
    positionals: { name: { type: 'string', describe: 'the model; "hub" is the hub\'s own log unless a model has that name' } },
    options: {
      ...hub,
      hub: { type: 'boolean', default: false, describe: 'the hub\'s own log (requests, state changes, reloads) instead of a model\'s' },
      follow: { alias: 'f', type: 'boolean', default: false, describe: 'keep printing new lines' },
      lines: { alias: 'n', type: 'number', default: 200, describe: 'how many lines from the end to print first' },
    },
    examples: [['hub logs demo-small', 'the last 200 lines'], ['hub logs demo-small -f -n 20', 'the last 20, then follow'], ['hub logs --hub -f', 'follow the hub\'s own log']],
    run: lazy(() => import('./logs.js'), (m, a) => m.logs(a)),
  },
  {
    usage: 'requests',
    describe: 'the hub\'s request log: recent requests with their latency, tokens and key name, oldest first; -f follows new ones',
    options: {
      ...hub,
      model: { type: 'string', describe: 'only this model\'s requests (a name or alias)' },
      status: { type: 'string', describe: 'only this status (404) or class (5xx)' },
      since: { type: 'string', describe: 'only requests since this time (ISO 8601, e.g. 2026-01-31T12:00:00Z, or ms since 1970)' },
      limit: { type: 'string', describe: 'at most this many of the newest' },
      csv: { type: 'boolean', default: false, describe: 'CSV with a header row (as GET /hub/api/requests?format=csv)' },
      ...json,
      follow: { alias: 'f', type: 'boolean', default: false, describe: 'then print each new request as it finishes, until Ctrl-C' },
    },
    examples: [['hub requests --status 5xx', 'the failed requests still in the log'], ['hub requests --model demo-small -f', 'follow one model\'s requests'], ['hub requests --csv > requests.csv', 'export the log']],
    run: lazy(() => import('./requests.js'), (m, a) => m.requests(a)),
  },
  {
    usage: 'check',
    describe: 'validate a config: every problem with its line, or a summary of what it defines',
    options: { ...config, ...json },
    examples: [['hub check', 'check ./hub.yaml'], ['hub check --config new.yaml --json', 'the normalized config, secrets masked']],
    run: lazy(() => import('./check.js'), (m, a) => m.check(a.config, a.json as boolean)),
  },
  {
    usage: 'init [folders..]',
    describe: 'write a hub.yaml for this machine: model servers found on PATH, GGUF models found in the folders',
    positionals: { folders: { type: 'string', array: true, describe: 'folders to search for .gguf files (default: ~/models, ~/.cache/llama.cpp, LM Studio\'s)' } },
    options: {
      output: { type: 'string', default: 'hub.yaml', describe: 'the file to write' },
      force: { type: 'boolean', default: false, describe: 'replace the output file if it exists' },
      context: { type: 'number', default: 8192, describe: 'the largest context (-c) to give a model; smaller trained contexts are kept' },
      'max-memory': { type: 'string', describe: 'the memory budget of the models\' group (default: 75% of RAM)' },
    },
    examples: [['hub init ~/models', 'a hub.yaml serving every GGUF under ~/models'], ['hub init ~/models /data/gguf --output ~/.config/modelhub/hub.yaml --max-memory 22GiB', 'two folders, a 22 GiB budget, written where hub looks by default']],
    run: lazy(() => import('./init.js'), (m, a) => m.init(a)),
  },
  {
    usage: 'service <action>',
    describe: 'install or uninstall the hub as a systemd user service (runs hub serve with this config, restarts on failure)',
    positionals: { action: { type: 'string', choices: ['install', 'uninstall'], describe: 'install writes ~/.config/systemd/user/modelhub.service; uninstall stops and removes it' } },
    options: {
      ...config,
      print: { type: 'boolean', default: false, describe: 'install: print the unit instead of writing it' },
      force: { type: 'boolean', default: false, describe: 'replace or remove a modelhub.service that hub service install did not write' },
    },
    examples: [['hub service install --config ~/hub.yaml', 'write the unit for this config'], ['hub service install --print', 'show the unit only'], ['hub service uninstall', 'stop, disable and remove it']],
    run: lazy(() => import('./service.js'), (m, a) => (a.action === 'install' ? m.install(a) : m.uninstall(a))),
  },
  {
    usage: 'demo-model',
    describe: 'run the bundled demo backend (an OpenAI-compatible test server)',
    options: demoOptionTable,
    examples: [['hub demo-model --port 9000', 'a demo model on port 9000'], ['hub demo-model --port 9000 --load-time 2s --memory 256MiB', 'one that loads slowly and holds RAM']],
    run: lazy(() => import('./demo-model.js'), async (m, a) => { await m.demoModel(a); return undefined; }),
  },
];

/** `hub completion` is yargs' own; listed here so that the docs test sees every command. */
export const COMPLETION = { usage: 'completion [shell]', describe: 'print the shell completion script (bash, zsh or fish): hub completion >> ~/.bashrc' };

export const commandName = (usage: string) => usage.split(' ')[0];

/** --host and --port, checked: a usage error (exit 2) names the option. */
export function listenArgs(a: Args): { host?: string; port?: number } {
  const { host, port } = a as { host?: unknown; port?: unknown };
  if (host !== undefined && (typeof host !== 'string' || host.trim() === '' || /\s/.test(host))) {
    throw new CliError(EXIT.usage, `--host: expected an address like 127.0.0.1, ::1 or 0.0.0.0, got ${JSON.stringify(host)}`);
  }
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new CliError(EXIT.usage, `--port: expected a port number from 0 to 65535 (0: any free port), got ${typeof port === 'number' && Number.isNaN(port) ? 'something that is not a number' : JSON.stringify(port)}`);
  }
  return { host: host as string | undefined, port: port as number | undefined };
}
