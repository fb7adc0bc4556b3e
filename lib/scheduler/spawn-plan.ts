// The command a start runs, on a port that is free: an auto-assigned port something else holds is
// swapped for the next free one (with a notice); an explicit one that is taken fails the start,
// naming the holder, before anything is spawned.
import { resolveCommand } from '../config/command.js';
import type { SpawnSpec } from '../runtime/child.js';
import type { ExecutedModel, ModelContext } from './context.js';

export type SpawnPlan = { spec: SpawnSpec } | { error: string };

export async function planSpawn(model: ExecutedModel, ctx: ModelContext, reason: string): Promise<SpawnPlan> {
  const { driver } = ctx;
  const port = model.config.port!;
  if (await driver.portTaken(port).catch(() => false)) {
    const name = model.name;
    const holder = await driver.describePortHolder(port).catch(() => undefined);
    const by = holder ? ` by ${holder}` : ' by another process';
    if (model.config.portIsExplicit) return { error: `its port ${port} (models.${name}.port) is already in use${by}; stop that process, or give the model another port` };
    let next: number;
    try {
      next = await driver.findFreePort(port + 1, ctx.portsInUse());
    } catch (err) {
      return { error: `its port ${port} is already in use${by}, and ${(err as Error).message}` };
    }
    ctx.notice(`model ${name}: port ${port} is already in use${by}; starting it on port ${next} instead`);
    model.movePort(next);
  }
  const m = model.config;
  const values = { port: m.port!, model: m.name, hub: ctx.hubCommand };
  const argv = resolveCommand(m.argv!, values);
  const env = Object.fromEntries(Object.entries(m.env).map(([k, v]) => [k, resolveCommand([v], values)[0]]));
  if (model.gpus) {
    // The child sees only its devices, numbered as nvidia-smi numbers them (CUDA's own default order
    // is fastest first, which can differ on a box with mixed GPUs).
    env.CUDA_VISIBLE_DEVICES = model.gpus.join(',');
    env.CUDA_DEVICE_ORDER ??= 'PCI_BUS_ID';
  }
  return { spec: { model: m.name, argv, env, cwd: m.cwd, logFile: model.logFile, banner: `modelhub starting ${m.name} (${reason})${model.gpus ? ` on GPU ${model.gpus.join(', ')}` : ''}: ${argv.join(' ')}` } };
}
