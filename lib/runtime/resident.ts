// How much memory a backend's process holds, as the kernel counts it: VmRSS from /proc/<pid>/status
// (Linux). GPU memory is not visible here; this is the host RAM the process and its loaded weights use.
import { readFileSync } from 'node:fs';

/** Resident bytes of `pid`, or undefined where /proc is not there or the process is gone. */
export function residentBytes(pid: number): number | undefined {
  try {
    const line = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return line ? Number(line[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
