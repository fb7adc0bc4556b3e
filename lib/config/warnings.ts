// Things a valid config allows but that will likely cause trouble. `hub check` and `hub serve` print
// them as [warn] lines and go on: the config works, and the user may know their machine better.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { programFound } from './command.js';
import type { ConfigProblem } from './errors.js';
import { DEFAULT_PORTS_START } from './load.js';
import type { HubConfig } from './types.js';

/**
 * Auto-assigned ports inside the OS's ephemeral range (where the kernel picks local ports for outgoing
 * connections), passed in by the caller so that this stays free of OS access. A port in there can be
 * held at random by any client socket, and the model then fails to start. Explicit `port:`s are the
 * user's own choice and are not second-guessed.
 */
export function portWarnings(config: HubConfig, ephemeral: { low: number; high: number }): ConfigProblem[] {
  const auto = Object.values(config.models).flatMap((m) => (m.argv !== undefined && !m.portIsExplicit && m.port !== undefined ? [m.port] : []));
  const inside = auto.filter((p) => p >= ephemeral.low && p <= ephemeral.high).sort((a, b) => a - b);
  if (!inside.length) return [];
  const which = inside.length === 1 ? `auto-assigned port ${inside[0]}` : `${inside.length} auto-assigned ports (${inside[0]}–${inside.at(-1)})`;
  const highestBelow = ephemeral.low - auto.length; // the highest start that keeps every auto port below the range
  const advice =
    highestBelow >= 1024
      ? `set ports.start to ${Math.min(DEFAULT_PORTS_START, highestBelow)} or another value below the range`
      : ephemeral.high + auto.length <= 65535
        ? `set ports.start above ${ephemeral.high}`
        : 'narrow the range (sysctl net.ipv4.ip_local_port_range)';
  return [{
    path: 'ports.start',
    message:
      `${config.ports.start} puts ${which} inside the OS's ephemeral port range (${ephemeral.low}–${ephemeral.high}), ` +
      `where any outgoing connection may hold one and make that model fail to start; ${advice}`,
  }];
}

/**
 * Managed models whose program is not on PATH (or not at the path given): the config is valid, but
 * starting such a model would fail. Checked with the model's own env PATH and cwd; nothing is run.
 */
export function commandWarnings(config: HubConfig, env: NodeJS.ProcessEnv = process.env): ConfigProblem[] {
  const warnings: ConfigProblem[] = [];
  for (const m of Object.values(config.models)) {
    // One that exists but is no folder is a config error (load.ts).
    if (m.cwd !== undefined && !existsSync(m.cwd)) warnings.push({ path: `models.${m.name}.cwd`, message: `the folder ${m.cwd} does not exist; starting ${m.name} will fail until it does` });
    const program = m.argv?.[0];
    if (program === undefined || program.includes('${')) continue; // ${HUB} is the hub itself
    const path = m.env.PATH ?? env.PATH;
    if (programFound(program, path, m.cwd ?? dirname(config.path))) continue;
    const where = program.includes('/') ? `${program} does not exist or is not executable` : `${program} is not found on PATH`;
    warnings.push({ path: `models.${m.name}.cmd`, message: `${where}; starting ${m.name} will fail until it is installed (or give its full path)` });
  }
  return warnings;
}
