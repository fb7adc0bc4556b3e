// CLI output conventions (SPEC §5): lines start with [ok] [info] [warn] [err]; exit codes. Writes never
// throw: a closed pipe (`hub check | head -1`) or a closed terminal just ends the output (see stdio.ts).
//
// Whatever the hub or a backend wrote (log lines, error messages, model names) reaches the operator's
// terminal only through visible(): a backend printing `ESC]0;title BEL`, `ESC[2J` or an OSC 52
// clipboard write must not retitle, clear or fill the clipboard of the terminal it is shown in. The
// CLI's own colours (picocolors, log-update) are added after that, around text already made visible.
import { safeWrite } from '../stdio.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, notRunning: 3 } as const;

// C0 controls except \t and \n, DEL, and the C1 controls (U+0080–U+009F, which some terminals also
// take as escape sequences: U+009B is a one-character CSI).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** A control character as text: C0 and DEL as their Unicode control pictures (ESC → ␛), C1 as \x9b. */
function picture(ch: string): string {
  const code = ch.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return '\u2421';
  return `\\x${code.toString(16)}`;
}

/** `text` with every control character but \n and \t shown as visible text; CRLF line ends become \n. */
export function visible(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(CONTROL, picture);
}

export const say = {
  ok: (msg: string) => safeWrite(process.stdout, `[ok] ${visible(msg)}\n`),
  info: (msg: string) => safeWrite(process.stdout, `[info] ${visible(msg)}\n`),
  warn: (msg: string) => safeWrite(process.stderr, `[warn] ${visible(msg)}\n`),
  err: (msg: string) => safeWrite(process.stderr, `[err] ${visible(msg)}\n`),
  /** JSON (--json): JSON.stringify already escapes every control character (ESC is \u001b). */
  json: (value: unknown, replacer?: (key: string, value: unknown) => unknown) => safeWrite(process.stdout, `${JSON.stringify(value, replacer, 2)}\n`),
  /**
   * Text the CLI composed itself (a table), which may carry its own colour codes: every piece of it
   * that came from the hub must have gone through visible() (table.ts does, cell by cell).
   */
  composed: (text: string) => safeWrite(process.stdout, text),
  /** Text from the hub or a backend, as it comes (a log): made visible, lines and tabs kept. */
  text: (text: string) => safeWrite(process.stdout, visible(text)),
};
