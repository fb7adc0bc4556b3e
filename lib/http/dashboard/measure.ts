// Measured memory of a backend process, where the OS tells: its resident set size (VmRSS) from
// /proc on Linux. Elsewhere, or for a process that is gone, it is unknown and the dashboard shows
// only the declared memory. RSS is host RAM: a GPU backend's weights in VRAM are not in it.
import { readFileSync } from 'node:fs';

export function residentBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
