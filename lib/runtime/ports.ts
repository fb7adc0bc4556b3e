// Backend ports: whether one can be listened on (tested the way a backend will use it), the next free
// one for an auto-assigned model, who holds a taken one (Linux), whether a backend's log says it could
// not bind, and where the OS hands out ports for outgoing connections.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setImmediate as nextTick } from 'node:timers/promises';
import { maskArgv } from '../secrets.js';

export interface PortRange {
  low: number;
  high: number;
}

/** Linux's default; assumed wherever the range cannot be read. */
export const DEFAULT_EPHEMERAL_RANGE: Readonly<PortRange> = { low: 32768, high: 60999 };

/**
 * The range the kernel picks local ports from for outgoing connections: a port in here can be held at
 * random by any client socket. Read from /proc on Linux; 32768–60999 when the file is missing or odd.
 */
export function ephemeralPortRange(file = '/proc/sys/net/ipv4/ip_local_port_range'): PortRange {
  try {
    const [low, high] = readFileSync(file, 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high) && low >= 1 && low <= high && high <= 65535) return { low, high };
  } catch {
    // not Linux, or /proc not mounted
  }
  return { ...DEFAULT_EPHEMERAL_RANGE };
}

let kernelRangeRead: PortRange | undefined;
/** The machine's ephemeral range, read once (it is a boot-time setting). */
const kernelRange = (): PortRange => (kernelRangeRead ??= ephemeralPortRange());

// Probed in this order, one at a time (two probes at once would collide with each other):
// - 127.0.0.1, where backends usually listen;
// - 0.0.0.0, which also collides with a listener or a connected socket on any other IPv4 address
//   (e.g. an outgoing connection from 192.168.1.5:P);
// - ::, dual-stack, which also collides with listeners on ::1 and other IPv6 addresses.
const PROBE_HOSTS = ['127.0.0.1', '0.0.0.0', '::'] as const;

/**
 * True when a backend could not count on listening on `port`:
 * 1. Binding it (listen, then close at once) fails with EADDRINUSE on 127.0.0.1, 0.0.0.0 or :: —
 *    a listener on any address, or a connected socket whose local port it is (say, an outgoing
 *    connection the kernel gave that port). Connecting alone would only find listeners on loopback.
 * 2. On Linux, for a port in the range the kernel gives outgoing connections, /proc/net/tcp{,6} shows
 *    a socket some live process owns with that local port, in any state. This catches what step 1
 *    cannot: Node (like most servers) binds with SO_REUSEADDR, which the kernel lets through next to a
 *    connected socket that set SO_REUSEADDR too, yet a backend that does not set it would fail. Sockets
 *    no process owns (TIME_WAIT, orphans of a stopped backend) do not count: a backend rebinds over
 *    those, so restarting a model on its port keeps working. Outside that range a connected socket
 *    holds a port only when a program pinned it there on purpose, and reading the tables costs a cold
 *    start 3–5 ms (the kernel walks its whole socket hash), so they are read only inside it.
 * An address family the machine lacks (no IPv6) is skipped. Any other bind error (EACCES below 1024
 * without privileges) rejects, since "taken" would send the user looking for a holder that is not there.
 */
export async function portTaken(port: number, ephemeral: Readonly<PortRange> = kernelRange()): Promise<boolean> {
  // The socket tables are read while the binds are tried (a cold start waits for both).
  const sockets = port >= ephemeral.low && port <= ephemeral.high ? socketsOnPort(port) : Promise.resolve([]);
  sockets.catch(() => {}); // awaited below, unless a bind already answers
  for (const host of PROBE_HOSTS) if (!(await canListen(port, host))) return true;
  return (await sockets).length > 0;
}

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(false);
      else if (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL') resolve(true);
      else {
        const hint = err.code === 'EACCES' ? '; ports below 1024 need privileges, use a higher one' : '';
        reject(new Error(`cannot test port ${port} on ${host}: ${err.message}${hint}`));
      }
    });
    // exclusive: in a cluster worker, really bind instead of sharing the primary's handle.
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** How many taken ports findFreePort probes before giving up. */
export const FIND_FREE_PORT_TRIES = 100;

/**
 * The first port ≥ `from` that is not in `avoid` (ports other models have, including models still
 * draining after a reload) and not taken (see portTaken). Avoided ports cost nothing; at most `tries`
 * ports are probed, so a machine with a whole block in use gets a clear error instead of a long scan.
 */
export async function findFreePort(from: number, avoid: ReadonlySet<number>, tries = FIND_FREE_PORT_TRIES): Promise<number> {
  if (!Number.isInteger(from) || from < 1 || from > 65535) throw new RangeError(`findFreePort: ${from} is not a port (1–65535)`);
  let probed = 0;
  let avoided = 0;
  let port = from;
  for (; port <= 65535 && probed < tries; port++) {
    if (avoid.has(port)) { avoided++; continue; }
    probed++;
    if (!(await portTaken(port))) return port;
  }
  const last = port - 1;
  throw new Error(
    `no free port from ${from} to ${last}: ${probed} taken by other processes, ${avoided} assigned to models; ` +
      `stop what holds them, or set ports.start to a free range`,
  );
}

// /proc/net/tcp{,6}: "sl local_address rem_address st ... uid timeout inode ...", addresses as HEX:PORT.
const TCP_TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];
const TCP_LISTEN = '0A';

interface PortSocket {
  inode: string;
  listening: boolean;
}

/** Sockets with this local port that a live process owns (inode 0 = nobody: TIME_WAIT, orphans). */
async function socketsOnPort(port: number): Promise<PortSocket[]> {
  const found: PortSocket[] = [];
  for (const table of TCP_TABLES) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue; // not Linux, or no IPv6
    }
    // A busy machine lists thousands of sockets (TIME_WAIT included): only the lines that mention the
    // port (as ":XXXX ", in the local or the remote column) are split and looked at.
    const needle = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
    for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
      const start = text.lastIndexOf('\n', at) + 1;
      const end = text.indexOf('\n', at);
      const f = text.slice(start, end < 0 ? undefined : end).trim().split(/\s+/);
      if (end < 0) at = text.length;
      else at = end;
      if (start === 0 || f.length < 10) continue; // the header line, or a cut one
      const local = f[1];
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) !== port || f[9] === '0') continue;
      found.push({ inode: f[9], listening: f[3] === TCP_LISTEN });
    }
  }
  return found;
}

// Bounds for the /proc scan, far above a normal machine; a pathological one gets "cannot tell".
const MAX_PROCESSES = 10_000;
const MAX_FDS_PER_PROCESS = 10_000;
const MAX_COMMAND_CHARS = 200;

/**
 * Who holds `port`, for error messages: `pid 1234 (llama-server -m /models/x.gguf --port 20100)`.
 * Linux only: the sockets with that local port come from /proc/net/tcp{,6}, their owner from the
 * `socket:[inode]` links in /proc/<pid>/fd (a listener's owner is preferred over a connection's).
 * `knownPids` describes pids the caller knows better than their command line (e.g. "a leftover of an
 * earlier hub"). Undefined when it cannot tell: another OS, nothing there, or the holder's /proc
 * entries are not readable (another user's process, without root). Unreadable entries are skipped.
 */
export async function describePortHolder(port: number, knownPids?: ReadonlyMap<number, string>): Promise<string | undefined> {
  const sockets = await socketsOnPort(port);
  if (!sockets.length) return undefined;
  const pid = await ownerOf(
    new Set(sockets.filter((s) => s.listening).map((s) => `socket:[${s.inode}]`)),
    new Set(sockets.map((s) => `socket:[${s.inode}]`)),
  );
  if (pid === undefined) return undefined;
  const what = knownPids?.get(pid) ?? commandLine(pid);
  return what ? `pid ${pid} (${what})` : `pid ${pid}`;
}

/** The first pid with an fd on a listening socket, else the first with an fd on any of them. */
async function ownerOf(listening: ReadonlySet<string>, any: ReadonlySet<string>): Promise<number | undefined> {
  let pids: number[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).slice(0, MAX_PROCESSES);
  } catch {
    return undefined;
  }
  let fallback: number | undefined;
  for (const pid of pids) {
    // Sync calls within one process (thousands of readlinks run ~10x faster than async ones), and a
    // yield between processes so that the hub keeps serving while it looks.
    await nextTick();
    const holds = socketLinks(pid);
    if ([...holds].some((l) => listening.has(l))) return pid;
    if (fallback === undefined && [...holds].some((l) => any.has(l))) fallback = pid;
  }
  return fallback;
}

function socketLinks(pid: number): Set<string> {
  const links = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return links; // gone, or another user's
  }
  for (const fd of fds.slice(0, MAX_FDS_PER_PROCESS)) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:[')) links.add(link);
    } catch {
      // closed meanwhile
    }
  }
  return links;
}

function commandLine(pid: number): string | undefined {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.length > 0);
    // Shown in start failures and notices: another backend's --api-key must not be.
    const text = args.length ? maskArgv(args).join(' ') : `[${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}]`;
    return text.length > MAX_COMMAND_CHARS ? `${text.slice(0, MAX_COMMAND_CHARS - 1)}…` : text;
  } catch {
    return undefined;
  }
}

// How backends say they could not bind their port, matched line by line.
const ADDRESS_IN_USE: readonly RegExp[] = [
  /EADDRINUSE/, // Node, libuv
  /address already in use/i, // strerror on Linux and macOS: Python/uvicorn (vLLM, SGLang, mlx), Go (Ollama), Rust, C
  /\[Errno 98\]/, // Python's OSError for EADDRINUSE on Linux, e.g. uvicorn's "[Errno 98] error while attempting to bind"
  /couldn'?t bind\b.*\bsocket/i, // llama.cpp / whisper.cpp server: "couldn't bind HTTP server socket, hostname: …, port: …"
  /only one usage of each socket address/i, // Windows (WSAEADDRINUSE)
];

/**
 * Whether a backend's last log lines show that it failed to bind its port because something holds
 * it. llama.cpp's "couldn't bind" does not say why; a taken port is by far the usual reason, so it
 * counts. Other bind failures that name their cause (EADDRNOTAVAIL, "[Errno 99] … cannot assign
 * requested address") do not.
 */
export function mentionsAddressInUse(logLines: readonly string[]): boolean {
  return logLines.some((line) => ADDRESS_IN_USE.some((re) => re.test(line)));
}
