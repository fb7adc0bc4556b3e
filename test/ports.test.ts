// lib/runtime/ports.ts on real sockets: what counts as a taken port (listeners on any address,
// connected sockets), the next free port, naming the holder from /proc, reading bind failures in logs.
import { writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_EPHEMERAL_RANGE, describePortHolder, ephemeralPortRange, findFreePort, mentionsAddressInUse, portTaken } from '../lib/runtime/ports.js';
import { freePortRange, tempDir, waitFor } from './helpers.js';

const linuxOnly = process.platform === 'linux' ? false : 'reads /proc (Linux only)';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A listener on host:port (0 = any free port), closed at teardown. */
async function listen(t: Teardown, port: number, host: string): Promise<{ server: Server; port: number }> {
  const accepted = new Set<Socket>();
  const server = createServer((socket) => {
    accepted.add(socket.on('error', () => {}));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  // close() waits for accepted connections, so end them here rather than rely on teardown order.
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of accepted) socket.destroy();
    server.close(() => resolve());
  }));
  return { server, port: (server.address() as { port: number }).port };
}

/** An outgoing connection to a local listener, destroyed at teardown; `localPort` pins its own port. */
async function connected(t: Teardown, localPort?: number): Promise<Socket> {
  const { port } = await listen(t, 0, '127.0.0.1');
  const socket = connect({ port, host: '127.0.0.1', localPort });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  t.teardown(() => socket.destroy());
  return socket;
}

t.test('a port is taken when anything listens on it, on any address', async (t) => {
  const base = await freePortRange(4);
  t.equal(await portTaken(base), false, 'a free port is free');
  await listen(t, base, '127.0.0.1');
  t.equal(await portTaken(base), true, 'a listener on 127.0.0.1');
  await listen(t, base + 1, '0.0.0.0');
  t.equal(await portTaken(base + 1), true, 'a listener on 0.0.0.0');
  await listen(t, base + 2, '::1').then(
    async () => t.equal(await portTaken(base + 2), true, 'a listener on ::1'),
    () => t.pass('no IPv6 loopback here; skipped'),
  );
  // Linux answers on all of 127.0.0.0/8: 127.0.0.2 stands in for another interface's address.
  await listen(t, base + 3, '127.0.0.2').then(
    async () => t.equal(await portTaken(base + 3), true, 'a listener on another local address (127.0.0.2)'),
    () => t.pass('127.0.0.2 is not local here; skipped'),
  );
  t.equal(await portTaken(base), true, 'probing a taken port leaves its listener alone');
});

t.test('a port is taken when an outgoing connection got it from the kernel', async (t) => {
  // The defect that moved ports.start: the kernel gives outgoing connections local ports from the
  // ephemeral range, and a backend cannot listen on a port one of them holds.
  const outgoing = await connected(t);
  t.equal(await portTaken(outgoing.localPort!), true, `its local port (${outgoing.localPort}) is taken`);
});

t.test('a port is taken when a connection pinned to it as local port is open', { skip: linuxOnly }, async (t) => {
  // Pinned with localPort, Node's socket carries SO_REUSEADDR, so a bind alone would let it through;
  // /proc/net/tcp shows it. The tables are read for ports in the kernel's ephemeral range (where any
  // client socket may hold one), so the port pinned here is one from that range: a listener on port 0
  // gets one, and closing it frees it.
  const probe = await listen(t, 0, '127.0.0.1');
  const pinned = probe.port;
  await new Promise((resolve) => probe.server.close(resolve));
  const range = ephemeralPortRange();
  t.ok(pinned >= range.low && pinned <= range.high, `port ${pinned} is in the ephemeral range ${range.low}-${range.high}`);
  const socket = await connected(t, pinned);
  t.equal(socket.localPort, pinned, 'the connection really uses that local port');
  t.equal(await portTaken(pinned), true, 'P is taken while the connection is open');
  socket.destroy();
  // What is left after the close (TIME_WAIT, owned by no process) does not stop a backend from binding.
  await waitFor('the closed connection to let go of its port', async () => !(await portTaken(pinned)), 5000);
  t.pass('free again once the connection is closed');
});

t.test('findFreePort skips taken and avoided ports, and says why when it finds none', async (t) => {
  const base = await freePortRange(4);
  await listen(t, base, '127.0.0.1');
  t.equal(await findFreePort(base, new Set([base + 1])), base + 2, 'skips a taken port and one assigned to another model');
  t.equal(await findFreePort(base + 3, new Set()), base + 3, 'a free start is kept');
  await listen(t, base + 2, '0.0.0.0');
  await t.rejects(findFreePort(base, new Set([base + 1]), 2), new RegExp(`^no free port from ${base} to ${base + 2}: 2 taken by other processes, 1 assigned to models; stop what holds them, or set ports\\.start to a free range$`), 'bounded: gives up after `tries` taken ports');
  await t.rejects(findFreePort(65535, new Set([65535])), /no free port from 65535 to 65535: 0 taken by other processes, 1 assigned to models/, 'stops at 65535');
  await t.rejects(findFreePort(0, new Set()), RangeError);
});

t.test('describePortHolder names the process holding a port', { skip: linuxOnly }, async (t) => {
  const { port } = await listen(t, 0, '127.0.0.1');
  const started = Date.now();
  const holder = await describePortHolder(port);
  t.match(holder, new RegExp(`^pid ${process.pid} \\(\\S*node\\S* .+\\)$`), `this test's own pid and node command: ${holder}`);
  t.ok(Date.now() - started < 2000, `fast enough for an error path (${Date.now() - started}ms)`);
  t.equal(await describePortHolder(port, new Map([[process.pid, 'a leftover of an earlier hub']])), `pid ${process.pid} (a leftover of an earlier hub)`, 'a known pid is described by the caller');
  t.equal(await describePortHolder(port, new Map([[process.pid + 1_000_000, 'someone else']])), holder, 'other known pids do not matter');

  const outgoing = await connected(t);
  t.match(await describePortHolder(outgoing.localPort!), new RegExp(`^pid ${process.pid} \\(`), 'a connected socket\'s owner too');

  const free = await freePortRange(1);
  t.equal(await describePortHolder(free), undefined, 'nobody holds a free port');
});

t.test('mentionsAddressInUse recognizes how backends report a taken port', async (t) => {
  const inUse = [
    'main: couldn\'t bind HTTP server socket, hostname: 127.0.0.1, port: 20100', // llama.cpp llama-server
    'ERROR:    [Errno 98] error while attempting to bind on address (\'0.0.0.0\', 20100): address already in use', // uvicorn (vLLM, SGLang)
    'OSError: [Errno 98] Address already in use', // vLLM binding its socket itself
    'Error: listen tcp 127.0.0.1:20100: bind: address already in use', // Ollama (Go)
    'Error: listen EADDRINUSE: address already in use 127.0.0.1:20100', // Node
    'Error: listen tcp 127.0.0.1:11434: bind: Only one usage of each socket address (protocol/network address/port) is normally permitted.', // Windows
  ];
  for (const line of inUse) t.equal(mentionsAddressInUse(['INFO: starting', line, 'INFO: shutting down']), true, line);
  t.equal(mentionsAddressInUse([
    'llama_model_load: error loading model: unable to allocate CUDA0 buffer',
    'ERROR:    [Errno 99] error while attempting to bind on address (\'::1\', 8000, 0, 0): cannot assign requested address',
    'main: server is listening on http://127.0.0.1:20100 - starting the main loop',
  ]), false, 'an unrelated failure, and a bind failure for another reason');
  t.equal(mentionsAddressInUse([]), false, 'an empty log');
});

t.test('ephemeralPortRange reads the kernel setting, with a fallback', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'ip_local_port_range');
  writeFileSync(file, '40000\t50999\n');
  t.same(ephemeralPortRange(file), { low: 40000, high: 50999 });
  writeFileSync(file, 'nonsense\n');
  t.same(ephemeralPortRange(file), DEFAULT_EPHEMERAL_RANGE, 'unreadable values: 32768–60999');
  t.same(ephemeralPortRange(join(dir, 'missing')), { low: 32768, high: 60999 }, 'no file (not Linux): 32768–60999');
  const live = ephemeralPortRange();
  t.ok(live.low >= 1 && live.low <= live.high && live.high <= 65535, `this machine: ${live.low}–${live.high}`);
});
