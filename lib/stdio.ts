// The hub's own stdout and stderr, which can break under it: the reader of a pipe goes away (EPIPE,
// `hub check | head -1`) or the terminal is closed (EIO on every write after the kernel hangs it up).
// Neither may crash the hub or the CLI: the first error marks the stream broken, later writes to it are
// dropped, and everything else goes on (the hub also logs to a file, see log.ts).
import { closeSync, constants, openSync } from 'node:fs';
import { isatty } from 'node:tty';

const guarded = new WeakSet<NodeJS.WritableStream>();
const broken = new WeakSet<NodeJS.WritableStream>();

/** Makes write errors on `stream` mark it broken instead of being thrown as an uncaught 'error' event. */
export function guard(stream: NodeJS.WritableStream): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on('error', () => broken.add(stream));
}

/** Guards process.stdout and process.stderr, so that no write anywhere in the process can crash it. */
export function protectStdio(): void {
  guard(process.stdout);
  guard(process.stderr);
}

/** Writes unless the stream has broken; never throws. Anything queueWrite holds is written first. */
export function safeWrite(stream: NodeJS.WritableStream, text: string): void {
  if (queued.size) writeQueued();
  writeNow(stream, text);
}

/**
 * Like safeWrite, but written together with whatever else is queued for the stream in this turn of
 * the event loop, as one write. For the hub's log on stdout, one line per request: to a pipe or a file
 * each write is a system call made on the spot, ~15-20 µs a request on a busy hub. Any safeWrite (to
 * either stream) writes what is queued first, so lines keep their order, and so does the process's exit.
 */
export function queueWrite(stream: NodeJS.WritableStream, text: string): void {
  const held = queued.get(stream);
  if (held !== undefined) return void queued.set(stream, held + text);
  if (queued.size === 0) setImmediate(writeQueued);
  queued.set(stream, text);
}

const queued = new Map<NodeJS.WritableStream, string>();
process.on('exit', () => writeQueued());

function writeQueued(): void {
  for (const [stream, text] of queued) {
    queued.delete(stream);
    writeNow(stream, text);
  }
}

function writeNow(stream: NodeJS.WritableStream, text: string): void {
  guard(stream);
  if (broken.has(stream)) return;
  try {
    stream.write(text);
  } catch {
    broken.add(stream); // a synchronous failure (e.g. the stream was destroyed)
  }
}

// Which of stdin/stdout/stderr were terminals when the process started, and whether it had a
// controlling terminal then. Read once, at startup: after a hangup these questions get other answers.
const TERMINAL_FDS = [0, 1, 2].filter((fd) => isatty(fd));
const HAD_CONTROLLING_TERMINAL = TERMINAL_FDS.length > 0 && canOpenControllingTerminal();

/**
 * True when the process was started on a terminal that has since been closed (hung up).
 *
 * SIGHUP means two things: an operator's `kill -HUP` (reload the config) and "your terminal went
 * away" (the kernel sends it when a terminal window, ssh session or pty master is closed). The
 * signal itself does not say which, but the terminal does: the kernel first switches every open file
 * of a hung-up tty to "hung up" (writes and ioctls fail with EIO, so isatty() turns false) and detaches
 * the session from it (opening /dev/tty fails with ENXIO), and only then sends SIGHUP. A process that
 * was not started on a terminal (a daemon, a service, nohup, everything redirected) has nothing to
 * lose, so for it SIGHUP is always a reload.
 */
export function terminalHungUp(): boolean {
  if (TERMINAL_FDS.length === 0) return false;
  if (TERMINAL_FDS.some((fd) => !isatty(fd))) return true;
  return HAD_CONTROLLING_TERMINAL && !canOpenControllingTerminal();
}

function canOpenControllingTerminal(): boolean {
  try {
    closeSync(openSync('/dev/tty', constants.O_RDWR | constants.O_NOCTTY));
    return true;
  } catch {
    return false;
  }
}

/**
 * process.exit, minus a Node 20 abort: at exit Node restores the terminal settings of every stdio fd
 * that was a terminal at startup and asserts that this worked, which it cannot on a hung-up terminal
 * (EIO): the process dies with SIGABRT and a native stack trace. Node skips fds that are closed, so
 * close the dead ones first.
 */
export function exitProcess(code: number): never {
  for (const fd of TERMINAL_FDS) {
    if (isatty(fd)) continue;
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
  process.exit(code);
}
