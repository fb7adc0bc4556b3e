// Logs that stay bounded on disk and never block the hub: model logs and hub.log rotate by
// `log.rotate` (at most `keep` rotated files), model output is stamped line by line, a child that
// floods its output slows neither requests to other models nor grows the hub, and output that the
// disk cannot keep up with is dropped and counted. Real hub, real processes; the bounded writer and the
// line stamper also as units (an overflow cannot be forced reliably through a real disk).
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { closeLogFiles, createLogger } from '../lib/log.js';
import { BoundedWriter, LineStamper, rfsInterval } from '../lib/runtime/log-file.js';
import { tailLines } from '../lib/runtime/log-tail.js';
import { safeWrite } from '../lib/stdio.js';
import { freePortRange, getJson, postJson, serveHub, tempDir, waitFor } from './helpers.js';

const STAMPED = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|stderr|hub) /;
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A model command: `script` run by sh first (in the background if it ends with &), then the demo backend. */
const shThenDemo = (script: string) => JSON.stringify(['sh', '-c', `${script} exec "$@"`, 'sh', '${HUB}', 'demo-model', '--port', '${PORT}', '--model', '${MODEL}']);

/** `name` and its rotated files in `dir`, by suffix. */
function rotatedFiles(dir: string, name: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`${name}.`) && /^\.\d+(\.gz)?$/.test(f.slice(name.length))).sort();
}

/**
 * A disk that holds each write until the test lets it go (`release` the oldest), or until `open`, from
 * when on it takes every write at once: what it was given is in `written`.
 */
function heldDisk() {
  const written: string[] = [];
  const held: (() => void)[] = [];
  let opened = false;
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      written.push(chunk.toString());
      if (opened) done();
      else held.push(done);
    },
  });
  return {
    stream,
    written,
    release: () => held.shift()!(),
    open: () => { opened = true; for (const done of held.splice(0)) done(); },
  };
}

/** A log file's text; '' while it is absent (for a moment during each rotation). */
const readLog = (path: string) => { try { return readFileSync(path, 'utf8'); } catch { return ''; } };

/** A rotated .gz that gunzips whole (rotations are compressed in the background, under the final name). */
const wholeGzip = (path: string) => { try { gunzipSync(readFileSync(path)); return true; } catch { return false; } };

t.test('units', async (t) => {
  t.test('LineStamper stamps each line with the time and the stream, and buffers partial lines (bounded)', async (t) => {
    const s = new LineStamper('stderr', 10);
    const now = new Date('2026-12-01T09:00:00.123Z');
    t.equal(s.push(Buffer.from('one\ntw'), now), '2026-12-01T09:00:00.123Z stderr one\n');
    t.equal(s.push(Buffer.from('o\nthree\n'), now), '2026-12-01T09:00:00.123Z stderr two\n2026-12-01T09:00:00.123Z stderr three\n');
    t.equal(s.push(Buffer.from('0123456'), now), '', 'a partial line waits');
    t.equal(s.push(Buffer.from('789abc'), now), '2026-12-01T09:00:00.123Z stderr 0123456789abc\n', 'until it reaches the bound');
    t.equal(s.push(Buffer.from([0xc3]), now), '', 'a character split across chunks');
    t.equal(s.push(Buffer.from([0xa9, 0x0a]), now), '2026-12-01T09:00:00.123Z stderr é\n', 'is decoded whole');
    t.equal(s.push('tail', now), '');
    t.equal(s.flush(now), '2026-12-01T09:00:00.123Z stderr tail\n', 'flush writes what is left');
    t.equal(s.flush(now), '');
    s.push('half a li', now);
    t.equal(s.cut(false), 9, 'cut drops the partial line');
    t.equal(s.push('ne\nnext\n', now), '2026-12-01T09:00:00.123Z stderr next\n', 'and the rest of the line it cut');
    s.cut(true);
    t.equal(s.push('whole\n', now), '2026-12-01T09:00:00.123Z stderr whole\n', 'but not the next line when the drop ended one');
  });

  t.test('BoundedWriter drops what does not fit, counts it, and says so once the stream has caught up', async (t) => {
    const written: string[] = [];
    let release: (() => void) | undefined;
    // A disk that takes each write until released.
    const slow = new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _enc, done) {
        written.push(chunk.toString());
        release = done;
      },
    });
    const w = new BoundedWriter(slow, (n) => `dropped ${n}\n`, 100);
    t.ok(w.write('a'.repeat(60)), 'fits');
    t.ok(w.write('b'.repeat(30)), 'fits');
    t.notOk(w.write('c'.repeat(20)), 'over the bound: dropped');
    t.notOk(w.write('d'.repeat(20)), 'dropped');
    t.ok(w.fits(10) && !w.fits(11), 'what waits counts toward the bound: 90 of 100 bytes pending');
    t.equal(w.totalDropped, 40);
    while (release) {
      const r = release;
      release = undefined;
      r();
      await sleep(1);
    }
    t.same(written, ['a'.repeat(60), 'b'.repeat(30), 'dropped 40\n'], 'one line says how much was dropped, after the rest');
    t.ok(w.write('e'), 'room again');
    await new Promise<void>((resolve) => {
      w.end('end\n', resolve);
      const pump = () => { if (release) { const r = release; release = undefined; r(); } if (!slow.writableFinished) setTimeout(pump, 1); };
      pump();
    });
    t.same(written.slice(3), ['e', 'end\n']);
    t.notOk(w.write('after'), 'nothing after the end');
  });

  t.test('BoundedWriter: what comes while a write is under way goes as one write after it, in order, 16 KiB at most', async (t) => {
    const disk = heldDisk();
    const { written } = disk;
    const w = new BoundedWriter(disk.stream, (n) => `dropped ${n}\n`);
    w.write('first\n');
    for (const line of ['b\n', 'c\n', 'd\n']) w.write(line);
    t.same(written, ['first\n'], 'one write at a time goes to the stream');
    disk.release();
    await waitFor('the lines that waited', () => written.length === 2);
    t.equal(written[1], 'b\nc\nd\n', 'joined into one write, in order');
    const kib = (c: string) => `${c.repeat(1023)}\n`;
    for (const c of 'efghijklmnopqrstuvwx') w.write(kib(c)); // 20 KiB while 'b c d' is under way
    disk.release();
    await waitFor('the next write', () => written.length === 3);
    t.equal(written[2], [...'efghijklmnopqrst'].map(kib).join(''), 'the first 16 KiB of what waited');
    disk.release();
    await waitFor('the rest', () => written.length === 4);
    t.equal(written[3], [...'uvwx'].map(kib).join(''), 'then the rest');
    await new Promise<void>((resolve) => {
      w.end('end\n', resolve);
      disk.open();
    });
    t.same(written.slice(4), ['end\n']);
  });

  t.test('BoundedWriter.end while a write is under way: what waited in 16 KiB writes, then the dropped count, then the last line', async (t) => {
    const disk = heldDisk();
    const w = new BoundedWriter(disk.stream, (n) => `dropped ${n}\n`, 50 * 1024);
    const kib = (i: number) => `${String(i).padStart(1023, '.')}\n`;
    t.ok(w.write(kib(0)), 'the write under way');
    for (let i = 1; i <= 41; i++) t.ok(w.write(kib(i)), `line ${i} waits`);
    t.notOk(w.write('x'.repeat(9 * 1024)), 'over the bound: dropped');
    await new Promise<void>((resolve) => {
      w.end('last\n', resolve);
      disk.open();
    });
    t.same(disk.written.map((x) => x.length), [1024, 16384, 16384, 9216, 'dropped 9216\n'.length, 5], 'what waited goes 16 KiB at most a write, then the count, then the last line');
    t.equal(disk.written.slice(0, 4).join(''), Array.from({ length: 42 }, (_, i) => kib(i)).join(''), 'in order, nothing lost');
  });

  t.test('BoundedWriter: a write that fails lets go of what waited and takes nothing more', async (t) => {
    const written: string[] = [];
    let fail: ((err: Error) => void) | undefined;
    const failing = new Writable({ write(chunk: Buffer, _enc, done) { written.push(chunk.toString()); fail = done; } });
    failing.on('error', () => {});
    const w = new BoundedWriter(failing, (n) => `dropped ${n}\n`, 100);
    w.write('a'.repeat(10));
    w.write('b'.repeat(80));
    t.notOk(w.fits(20), 'what waits counts toward the bound');
    fail!(new Error('EIO'));
    t.ok(!w.write('c') && !w.fits(0), 'after the failure, nothing more is taken');
    await new Promise((r) => setImmediate(r));
    t.same(written, ['a'.repeat(10)], 'and what waited is not written');
  });

  t.test('a log record that cannot be JSON (a BigInt) still gives a line, and the log call does not throw', async (t) => {
    let out = '';
    const sink = new Writable({ write(c: Buffer, _e, done) { out += c.toString(); done(); } });
    const log = createLogger('info', sink);
    t.doesNotThrow(() => log.info({ big: 10n }, 'counted'));
    await new Promise((r) => setImmediate(r));
    const line = JSON.parse(out);
    t.match(line, { level: 30, msg: /^counted \(this record could not be written as JSON: .*BigInt/ });
  });

  t.test('a log record is written the same to stdout and hub.log, repeated objects whole; a cycle still logs', async (t) => {
    const dir = tempDir(t);
    let out = '';
    const sink = new Writable({ write(c: Buffer, _e, done) { out += c.toString(); done(); } });
    const log = createLogger('info', sink, { file: join(dir, 'hub.log') });
    const shared = { name: 'x' };
    log.info({ a: shared, b: shared }, 'repeated');
    const cyclic: Record<string, unknown> = { name: 'y' };
    cyclic.self = cyclic;
    log.info({ c: cyclic }, 'cycle');
    await closeLogFiles();
    const file = readFileSync(join(dir, 'hub.log'), 'utf8');
    t.equal(out, file, 'the same lines in both');
    const [repeated, cycle] = file.trimEnd().split('\n').map((l) => JSON.parse(l));
    t.same([repeated.a, repeated.b], [{ name: 'x' }, { name: 'x' }], 'an object logged twice is written twice, not as [Circular]');
    t.same(cycle.c, { name: 'y', self: '[Circular]' }, 'a cycle is cut where it closes');
  });

  t.test('log lines on stdout: one write per turn of the event loop, in order with direct writes', async (t) => {
    const writes: string[] = [];
    const out = new Writable({ write(c: Buffer, _e, done) { writes.push(c.toString()); done(); } });
    const log = createLogger('info', out);
    log.info('one');
    log.info('two');
    t.same(writes, [], 'nothing written yet within the turn');
    await new Promise((r) => setImmediate(r));
    t.equal(writes.length, 1, 'both lines in one write');
    t.same(writes[0].trimEnd().split('\n').map((l) => JSON.parse(l).msg), ['one', 'two'], 'in order');
    log.info('three');
    safeWrite(out, '[ok] direct\n');
    t.same(writes.slice(1).map((w) => (w.startsWith('{') ? JSON.parse(w).msg : w)), ['three', '[ok] direct\n'], 'a direct write comes after what was logged before it');
    await new Promise((r) => setImmediate(r));
    t.equal(writes.length, 3, 'and nothing is written twice');
  });

  t.test('a broken stream never throws', async (t) => {
    const bad = new Writable({ write(_c, _e, done) { done(new Error('EIO')); } });
    const w = new BoundedWriter(bad, (n) => `dropped ${n}\n`);
    const failed = new Promise((resolve) => bad.once('error', resolve));
    w.write('x');
    await failed;
    t.notOk(w.write('y'), 'writes after the failure are dropped');
    await new Promise<void>((resolve) => w.end('z', resolve));
    t.pass();
  });

  t.test('hub.log: closeLogFiles flushes every record; a file that cannot be written never throws', async (t) => {
    const dir = tempDir(t);
    const sink = new Writable({ write(_c, _e, done) { done(); } });
    const log = createLogger('info', sink, { file: join(dir, 'logs', 'hub.log'), rotate: { sizeBytes: 10 * 2 ** 20, intervalMs: 86_400_000, keep: 2, compress: true } });
    for (let i = 0; i < 2000; i++) log.info({ i }, 'record');
    await closeLogFiles();
    const lines = readFileSync(join(dir, 'logs', 'hub.log'), 'utf8').trimEnd().split('\n');
    t.equal(lines.length, 2000, 'all 2000 records are in the file after closeLogFiles');
    t.equal(JSON.parse(lines[1999]).i, 1999);

    writeFileSync(join(dir, 'not-a-dir'), '');
    const broken = createLogger('info', sink, { file: join(dir, 'not-a-dir', 'hub.log') });
    for (let i = 0; i < 100; i++) broken.info({ i }, 'record');
    await sleep(50);
    broken.info('after the failure');
    await closeLogFiles();
    t.pass('logging to a file that cannot be created neither throws nor hangs closeLogFiles');
  });

  t.test('tailLines: the last n lines; 0 is none (and follows from the end)', async (t) => {
    const file = join(tempDir(t), 'm.log');
    writeFileSync(file, 'one\ntwo\nthree\n');
    t.same(await tailLines(file, 2), { text: 'two\nthree\n', end: 14 });
    t.same(await tailLines(file, 0), { text: '', end: 14 }, 'nothing, and the end to follow from');
    t.same(await tailLines(file, 10), { text: 'one\ntwo\nthree\n', end: 14 });
    t.same(await tailLines(join(tempDir(t), 'absent.log'), 5), { text: '', end: 0 });
  });

  t.test('rfsInterval maps durations to what rotating-file-stream accepts', async (t) => {
    t.equal(rfsInterval(0), undefined);
    t.equal(rfsInterval(86_400_000), '1d');
    t.equal(rfsInterval(7 * 86_400_000), '7d');
    t.equal(rfsInterval(6 * 3_600_000), '6h');
    t.equal(rfsInterval(5 * 3_600_000), '4h', '5h does not divide a day: the next shorter that does');
    t.equal(rfsInterval(90 * 60_000), '1h');
    t.equal(rfsInterval(15 * 60_000), '15m');
    t.equal(rfsInterval(30_000), '30s');
    t.equal(rfsInterval(10), '1s');
  });
});

t.test('hub serve with log.rotate { size: 64KiB, keep: 2 }', async (t) => {
  const dir = tempDir(t);
  const logs = join(dir, 'logs');
  const path = join(dir, 'hub.yaml');
  writeFileSync(path, `listen: { port: 0 }
state_dir: ${dir}
ports: { start: ${await freePortRange(6)} }
log: { level: info, rotate: { size: 64KiB, keep: 2, compress: true, interval: 1d } }
models:
  noisy: { backend: demo, cmd: ${shThenDemo("yes 'a log line' | head -c 400000; echo no newline at the end >&2;")} }
  flood: { backend: demo, cmd: ${shThenDemo('yes flood-line-0123456789abcdef &')} }
  quiet: { backend: demo, cmd: ${shThenDemo('')} }
`);
  const hub = await serveHub(t, path);
  const url = hub.origin;
  const pid = hub.child.pid!;

  t.test('a model log rotates by size and keeps at most `keep` rotated files, gzipped; lines are stamped', async (t) => {
    t.equal((await postJson(`${url}/hub/api/models/noisy/start`, {})).status, 200);
    await waitFor('the demo backend to listen', () => /listening on/.test(readLog(join(logs, 'noisy.log'))), 20_000);
    await waitFor('the rotations to be compressed', () => rotatedFiles(logs, 'noisy.log').every((f) => wholeGzip(join(logs, f))), 5000);
    const rotated = rotatedFiles(logs, 'noisy.log');
    t.same(rotated, ['noisy.log.1.gz', 'noisy.log.2.gz'], 'two rotated files, the live one keeps its name');
    for (const f of rotated) {
      const text = gunzipSync(readFileSync(join(logs, f))).toString('utf8');
      const lines = text.trimEnd().split('\n');
      t.ok(lines.length > 1000, `${f} holds lines`);
      t.ok(lines.every((l) => STAMPED.test(l)), `every line in ${f} is stamped`);
      t.ok(statSync(join(logs, f)).size < 64 * 1024, `${f} is compressed`);
    }
    t.match(gunzipSync(readFileSync(join(logs, 'noisy.log.1.gz'))).toString('utf8'), /^\S+Z stdout a log line$/m);
    const live = readFileSync(join(logs, 'noisy.log'), 'utf8');
    t.notMatch(live, /dropped \d+ bytes/, 'nothing dropped: ~1.5 MB of stamped lines stay under the 4 MiB bound');
    t.ok(Buffer.byteLength(live) < 2 * 64 * 1024, 'the live file is about `size` at most');
    t.match(live, /^\S+Z stderr no newline at the end$/m, 'stderr lines are marked stderr');
    t.ok(live.trimEnd().split('\n').every((l) => STAMPED.test(l)), 'every live line is stamped');
    const tail = await fetch(`${url}/hub/api/models/noisy/logs?tail=3`).then((r) => r.text());
    t.match(tail, /Z stderr listening on|Z stdout .*listening on/, 'the log API reads the stamped live file');
    t.equal((await postJson(`${url}/hub/api/models/noisy/stop`, {})).status, 200);
    await waitFor('the exit line', () => /^\S+Z hub --- exited \(/m.test(readLog(join(logs, 'noisy.log'))));
  });

  t.test('hub.log rotates the same way', async (t) => {
    // One line per request: a few thousand requests write a few hundred KiB.
    for (let round = 0; round < 40 && rotatedFiles(logs, 'hub.log').length < 2; round++) {
      await Promise.all(Array.from({ length: 100 }, () => fetch(`${url}/v1/models`).then((r) => r.arrayBuffer())));
    }
    await Promise.all(Array.from({ length: 400 }, () => fetch(`${url}/v1/models`).then((r) => r.arrayBuffer())));
    // Rotation (and gzip, written under its final name) finish in the background: wait for the two
    // files to be there and whole, then check there is no third.
    await waitFor('two compressed rotations', () => rotatedFiles(logs, 'hub.log').join() === 'hub.log.1.gz,hub.log.2.gz' && wholeGzip(join(logs, 'hub.log.1.gz')) && wholeGzip(join(logs, 'hub.log.2.gz')), 5000);
    t.same(rotatedFiles(logs, 'hub.log'), ['hub.log.1.gz', 'hub.log.2.gz'], 'at most two rotated files');
    t.notOk(existsSync(join(logs, 'hub.log.3.gz')));
    const rotatedLines = gunzipSync(readFileSync(join(logs, 'hub.log.1.gz'))).toString('utf8').trimEnd().split('\n');
    t.ok(rotatedLines.every((l) => typeof JSON.parse(l).msg === 'string'), 'rotated hub.log holds whole JSON lines');
    // The live file may be mid-append (or just rotated and empty): read it when it ends with a whole line.
    const { text } = await waitFor('the live hub.log to end with a whole line', () => {
      const text = readLog(join(logs, 'hub.log'));
      return text === '' || text.endsWith('\n') ? { text } : undefined;
    });
    t.ok(text.split('\n').filter(Boolean).every((l) => typeof JSON.parse(l).msg === 'string'), 'so does the live one');
  });

  t.test('a flooding child slows neither requests to another model nor grows the hub', async (t) => {
    const request = async () => {
      const start = performance.now();
      const res = await postJson(`${url}/v1/chat/completions`, { model: 'quiet', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] });
      t.equal(res.status, 200);
      return performance.now() - start;
    };
    const p50 = async () => {
      const times: number[] = [];
      for (let i = 0; i < 60; i++) times.push(await request());
      return times.sort((a, b) => a - b)[30];
    };
    await request(); // cold start
    const quiet = await p50();
    const rssBefore = rssMiB(pid);
    t.equal((await postJson(`${url}/hub/api/models/flood/start`, {})).status, 200);
    // Measure only once the flooder is writing hard: its log has rotated (64 KiB each time) twice.
    await waitFor('the flooder to fill two rotations', () => rotatedFiles(logs, 'flood.log').length >= 2, 10_000);
    const sizeAt1s = readdirSync(logs).filter((f) => f.startsWith('flood.log')).length;
    const flooded = await p50();
    // And RSS after the flooder has gone on for three more rounds of requests.
    for (let i = 0; i < 3; i++) await p50();
    const rssAfter = rssMiB(pid);
    t.comment(`logs: quiet p50 ${quiet.toFixed(1)} ms, with a flooder ${flooded.toFixed(1)} ms; hub RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MiB`);
    t.ok(flooded < 50, `p50 with a flooder ${flooded.toFixed(1)} ms (bound: 50 ms)`);
    t.ok(flooded < 5 * quiet + 5, `p50 with a flooder ${flooded.toFixed(1)} ms vs ${quiet.toFixed(1)} ms without (bound: 5x + 5 ms)`);
    t.ok(rssAfter - rssBefore < 100, `hub RSS grew ${(rssAfter - rssBefore).toFixed(0)} MiB (bound: 100)`);
    t.ok(sizeAt1s >= 2, 'the flooder was writing (its log rotated)');
    const files = readdirSync(logs).filter((f) => f.startsWith('flood.log'));
    t.ok(rotatedFiles(logs, 'flood.log').length <= 2, `at most two rotated flood logs (${files.join(', ')})`);
    const total = files.reduce((sum, f) => sum + statSync(join(logs, f)).size, 0);
    t.ok(total < 1024 * 1024, `the flooder's logs take ${total} bytes on disk (bound: 1 MiB)`);
    const dropped = /^\S+Z hub --- dropped (\d+) bytes of output/m.exec(readFileSync(join(logs, 'flood.log'), 'utf8'));
    t.comment(dropped ? `the live flood log says ${dropped[1]} bytes were dropped` : 'no drop in the live flood log');
    t.equal((await postJson(`${url}/hub/api/models/flood/stop`, {})).status, 200);
    t.equal((await getJson(`${url}/health`)).status, 200);
  });
});

t.test('log.rotate.interval: hub.log and model logs rotate on the clock, not only by size', async (t) => {
  const dir = tempDir(t);
  const logs = join(dir, 'logs');
  const path = join(dir, 'hub.yaml');
  writeFileSync(path, `listen: { port: 0 }
state_dir: ${dir}
ports: { start: ${await freePortRange(2)} }
log: { rotate: { interval: 1s, size: 10MiB, keep: 3, compress: false } }
models:
  m: { backend: demo, cmd: ${shThenDemo('')} }
`);
  const hub = await serveHub(t, path);
  const url = hub.origin;
  t.equal((await postJson(`${url}/hub/api/models/m/start`, {})).status, 200);
  // Keep both logs growing, so each interval boundary has something to rotate.
  const rotated = await waitFor('both logs to rotate', async () => {
    await fetch(`${url}/v1/models`).then((r) => r.arrayBuffer());
    await fetch(`${url}/upstream/m/health`).then((r) => r.arrayBuffer());
    const hubFiles = rotatedFiles(logs, 'hub.log');
    const modelFiles = rotatedFiles(logs, 'm.log');
    return hubFiles.length && modelFiles.length ? { hubFiles, modelFiles } : undefined;
  }, 8000);
  // Rotated files shift (.1 → .2) at each boundary: a look at the folder may catch .2 alone, mid-shift.
  t.ok(rotated.hubFiles.some((f) => /^hub\.log\.\d$/.test(f)), `hub.log rotated by time (${rotated.hubFiles.join(', ')}), though far under 10MiB`);
  t.ok(rotated.modelFiles.includes('m.log.1'), `m.log rotated by time (${rotated.modelFiles.join(', ')})`);
  const hubRotated = rotated.hubFiles.find((f) => /^hub\.log\.\d$/.test(f))!;
  t.ok(statSync(join(logs, hubRotated)).size < 1024 * 1024, 'the rotated hub.log is small: time, not size, rotated it');
  t.ok(readFileSync(join(logs, 'm.log.1'), 'utf8').trimEnd().split('\n').every((l) => STAMPED.test(l)), 'rotated model lines stay stamped');
});
