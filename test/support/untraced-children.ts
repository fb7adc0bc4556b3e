// The node processes the tests start (hub, hub serve, hub demo-model: hundreds in a run) without tap's
// process-info hook. tap puts `--import=@tapjs/processinfo/import.mjs` into NODE_OPTIONS, and a
// spawn hook (process-on-spawn) adds it back to every child's env, so that each descendant reports
// the files it loaded, for coverage. This suite collects no coverage (disable-coverage), and the hook
// more than doubles a child's start-up CPU: `hub check` 0.8 s → 1.8 s, `hub --version` 0.2 s → 0.55 s
// (it registers a module loader on its own thread, which then sees every import). Imported first by
// helpers.ts, so every test file that starts a process has it.

// process-on-spawn keeps its state in this global; in a tap test process its only listener is the
// one processinfo registered.
const hooks = (globalThis as Record<symbol, { listeners?: unknown[] } | undefined>)[Symbol.for('process-on-spawn@*:singletonId')];
if (hooks?.listeners) hooks.listeners.length = 0;

if (process.env.NODE_OPTIONS) {
  // tap writes each option in double quotes: "--import=file:///…/@tapjs/processinfo/dist/esm/import.mjs"
  const kept = process.env.NODE_OPTIONS.split(/\s+/).filter((o) => o && !/^"?(--import|--loader|--experimental-loader)=\S*@tapjs[/\\]processinfo/.test(o));
  if (kept.length) process.env.NODE_OPTIONS = kept.join(' ');
  else delete process.env.NODE_OPTIONS;
}

export {};
