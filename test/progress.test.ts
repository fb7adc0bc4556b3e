// A load's progress: the adapters' readers of backend log lines (vLLM's and SGLang's bars, llama.cpp's
// stages), and the watch each model's actor runs while it starts or wakes, on the fake clock: the
// stage and fraction from the backend's own lines, an estimate from the usual load time where the
// backend prints nothing, no more than a few reports a second, and the status field while it lasts.
import t from 'tap';
import { tqdmStage } from '../lib/backends/adapter.js';
import { llamaStage } from '../lib/backends/llama-cpp.js';
import { parseConfig } from '../lib/config/load.js';
import { Controller, type LoadProgress } from '../lib/scheduler/controller.js';
import { FakeClock } from './support/fake-clock.js';
import { fakeDriver } from './support/fake-driver.js';

t.test('tqdm bars as vLLM and SGLang draw them give the stage and the fraction', async (t) => {
  t.same(tqdmStage('Loading safetensors checkpoint shards:  45% Completed | 5/11 [00:03<00:04,  1.31it/s]'), { stage: 'Loading safetensors checkpoint shards', fraction: 5 / 11 });
  t.same(tqdmStage('(VllmWorker rank=0 pid=12) Loading safetensors checkpoint shards:  50% Completed | 1/2 [00:01<00:01]'), { stage: 'Loading safetensors checkpoint shards', fraction: 0.5 }, "a worker's prefix is not part of the stage");
  t.same(tqdmStage('Capturing CUDA graph shapes:  40%|████      | 28/70 [00:10<00:14,  2.71it/s]'), { stage: 'Capturing CUDA graph shapes', fraction: 0.4 });
  t.same(tqdmStage('Capturing batches (bs=4 avail_mem=20.1 GB):  75%|███████▌  | 3/4 [00:02<00:00]'), { stage: 'Capturing batches', fraction: 0.75 }, "SGLang's detail in parentheses is dropped");
  t.same(tqdmStage('Loading demo weights:  25% Completed | 1/4'), { stage: 'Loading demo weights', fraction: 0.25 });
  t.same(tqdmStage('Loading weights:  60%|'), { stage: 'Loading weights', fraction: 0.6 }, 'without a count, the percentage');
  t.equal(tqdmStage('INFO 12-05 10:00:00 [loader.py:447] Loading weights took 5.2 seconds'), undefined, 'an ordinary log line is no bar');
  t.equal(tqdmStage('ratio: 50% of requests |'), undefined, 'a stage must start with a word and name itself');
});

t.test("llama.cpp's load lines give stages without a fraction", async (t) => {
  t.same(llamaStage('llama_model_loader: loaded meta data with 26 key-value pairs and 291 tensors from m.gguf'), { stage: 'reading the model file' });
  t.same(llamaStage('load_tensors: loading model tensors, this can take a while... (mmap = true)'), { stage: 'loading weights' });
  t.same(llamaStage('common_init_from_params: warming up the model with an empty run - please wait ...'), { stage: 'warming up' });
  t.equal(llamaStage('srv  log_server_r: request: GET /health 127.0.0.1 503'), undefined);
});

function setup(t: { teardown(fn: () => unknown): void }) {
  const clock = new FakeClock();
  const driver = fakeDriver({ clock });
  const config = parseConfig(`state_dir: /tmp/modelhub-fake\ndefaults: { start_timeout: 60s, health: { interval: 1s } }\nmodels:\n  m: { backend: vllm, cmd: "fake --port \${PORT}" }\n`, '/tmp/hub.yaml');
  const c = new Controller(config, { driver, hubCommand: ['hub'] });
  const reports: LoadProgress[] = [];
  c.on('progress', (p) => reports.push(p));
  t.teardown(async () => {
    let done = false;
    void c.shutdown().then(() => { done = true; });
    await clock.until(() => done, 600_000);
  });
  return { clock, driver, c, reports };
}

t.test("a start reports the backend's own stages and fractions, a few times a second at most", async (t) => {
  const s = setup(t);
  Object.assign(s.driver.behaviour('m'), { readyAfterMs: 4000 });
  const started = s.c.start('m');
  await s.clock.advance(0);
  const child = s.driver.live('m')!;
  t.match(s.c.status().models[0].progress, { model: 'm', what: 'start', stage: 'starting', elapsed_ms: 0 }, 'status shows the start from its spawn');
  // A bar redrawn every 10 ms, with \r as tqdm does, for 2 s.
  for (let i = 0; i <= 200; i++) {
    child.print(`\rLoading safetensors checkpoint shards: ${String(Math.floor(i / 2)).padStart(3)}% Completed | ${i}/200`);
    await s.clock.advance(10);
  }
  const during = s.reports.filter((r) => r.stage === 'Loading safetensors checkpoint shards');
  t.ok(during.length >= 6 && during.length <= 10, `2 s of redraws every 10 ms gave ${during.length} reports (a few a second)`);
  t.ok(during.every((r, i) => i === 0 || r.fraction! >= during[i - 1].fraction!), 'the fraction only grows');
  t.match(during.at(-1), { source: 'backend', what: 'start' });
  t.ok(during.at(-1)!.fraction! > 0.9, 'the last report is near the end of the bar');
  child.print('\n'); // tqdm ends its bar with a line end when it closes
  child.print('Capturing CUDA graph shapes:   0%|          | 0/10\n');
  await s.clock.advance(100);
  t.match(s.reports.at(-1), { stage: 'Capturing CUDA graph shapes', fraction: 0 }, 'a new stage is reported at once');
  await s.clock.until(() => s.c.get('m').ready, 60_000);
  await started;
  t.equal(s.c.status().models[0].progress, null, 'no progress once it is ready');
  const count = s.reports.length;
  await s.clock.advance(5000);
  t.equal(s.reports.length, count, 'and no more reports');
});

t.test('a backend that prints nothing: the estimate comes from its usual start time', async (t) => {
  const s = setup(t);
  Object.assign(s.driver.behaviour('m'), { readyAfterMs: 4000 });
  const first = s.c.start('m');
  await s.clock.until(() => s.c.get('m').ready, 60_000);
  await first;
  t.match(s.reports.at(-1), { source: 'none', fraction: null, eta_ms: null }, 'the first start has nothing to estimate from');
  await s.c.stop('m');
  s.reports.length = 0;
  const second = s.c.start('m');
  await s.clock.advance(1000);
  const usual = s.c.status().models[0].load_ms.start_ms!;
  const at1s = s.reports.at(-1)!;
  t.match(at1s, { source: 'estimate', stage: 'starting' });
  t.equal(at1s.eta_ms, usual - at1s.elapsed_ms, 'ETA = usual start time − elapsed');
  t.equal(at1s.fraction, Math.round((at1s.elapsed_ms / usual) * 1000) / 1000, 'fraction = elapsed / usual');
  await s.clock.until(() => s.c.get('m').ready, 60_000);
  await second;
});

t.test('a wake-up is watched as well, and a failed start ends the reports', async (t) => {
  const s = setup(t);
  Object.assign(s.driver.behaviour('m'), { memoryTakesMs: 2000 });
  void s.c.start('m');
  await s.clock.until(() => s.c.get('m').ready, 60_000);
  void s.c.unload('m');
  await s.clock.until(() => s.c.get('m').memory === 'unloaded', 60_000);
  s.reports.length = 0;
  const load = s.c.load('m');
  await s.clock.advance(1200);
  t.match(s.reports, [{ what: 'wake', stage: 'loading' }], 'the wake-up is reported');
  await s.clock.until(() => s.c.get('m').memory === 'loaded', 60_000);
  await load;
  void s.c.stop('m');
  await s.clock.until(() => s.c.get('m').process === 'stopped', 60_000);
  Object.assign(s.driver.behaviour('m'), { readyAfterMs: 2000, failsToStart: 1 });
  s.reports.length = 0;
  const failed = s.c.start('m').catch((e: Error) => e);
  await s.clock.until(() => s.c.get('m').process === 'failed', 60_000);
  t.type(await failed, Error, 'the start fails');
  const count = s.reports.length;
  await s.clock.advance(5000);
  t.equal(s.reports.length, count, 'no reports after the failure');
  t.equal(s.c.status().models[0].progress, null);
});
