// `hub serve`: run the hub in the foreground until SIGINT/SIGTERM, then drain and stop every backend.
import { startHub } from '../hub.js';
import { createLogger } from '../log.js';
import { VERSION } from '../paths.js';
import { loadOrReport } from './check.js';
import { EXIT, say } from './output.js';

export async function serve(explicit: string | undefined): Promise<number> {
  const config = loadOrReport(explicit);
  if (!config) return EXIT.usage;
  const log = createLogger(config.log.level);
  let hub;
  try {
    hub = await startHub(config, { log });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') say.err(`cannot listen on ${config.listen.host}:${config.listen.port}: the address is in use (another hub?); stop it or set listen.port in ${config.path}`);
    else say.err(`cannot start the hub: ${e.message}`);
    return EXIT.failed;
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(config.listen.host);
  if (!loopback && config.auth.apiKeys.length === 0) say.warn(`listening on ${config.listen.host} without auth.api_keys: anyone who can reach this port can use your models`);
  say.ok(`modelhub ${VERSION} is serving ${Object.keys(config.models).length} models at ${hub.origin}/v1`);
  say.info(`status ${hub.origin}/hub/api/status · config ${config.path} · model logs ${config.log.dir}`);

  return new Promise((resolve) => {
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return say.warn(`${signal} again: still draining requests and stopping models, please wait`);
      stopping = true;
      say.info(`${signal}: draining in-flight requests and stopping models`);
      void hub.close().then(() => {
        say.ok('stopped');
        resolve(EXIT.ok);
      });
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
  });
}
