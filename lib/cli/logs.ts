// `hub logs <name> [-f] [-n N]`: GET /hub/api/models/{name}/logs?tail=N[&follow=1], copied to stdout.
// Following across a rotation is the hub's work (it reads the old file to its end, then the new one);
// here Ctrl-C ends the follow and the hub stopping ends it with a line that says so. What the backend
// wrote is shown with its control characters as visible text (output.ts), never sent to the terminal.
import type { Args } from './commands.js';
import { CliError } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say } from './output.js';

export async function logs(a: Args): Promise<number> {
  const { client } = await locateHub(a);
  const name = a.name as string;
  const lines = a.lines as number;
  if (!Number.isInteger(lines) || lines < 0) throw new CliError(EXIT.usage, `-n/--lines: expected a whole number of lines (0 or more), got ${String(a.lines)}`);
  const follow = a.follow === true;
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  // `hub logs -f x | head`: once the reader is gone there is no one to follow for.
  process.stdout.once('error', onSigint);
  try {
    const res = await client.stream(`/hub/api/models/${encodeURIComponent(name)}/logs?tail=${lines}${follow ? '&follow=1' : ''}`, abort.signal);
    res.setEncoding('utf8');
    // A model's log is the backend's own bytes: say.text shows its control characters as text. A CR
    // at the end of a chunk waits for the next one, so that a CRLF cut in two still ends the line.
    let heldCr = '';
    res.on('data', (chunk: string) => {
      const text = heldCr + chunk;
      heldCr = text.endsWith('\r') ? '\r' : '';
      say.text(heldCr ? text.slice(0, -1) : text);
    });
    res.once('end', () => say.text(heldCr));
    const ended = await new Promise<'end' | 'cut'>((resolve) => {
      res.once('end', () => resolve('end'));
      res.on('error', () => resolve('cut'));
      res.once('close', () => resolve(res.complete ? 'end' : 'cut'));
    });
    if (follow && !abort.signal.aborted) say.info(ended === 'end' ? `the hub ended the log stream of ${name} (it is stopping, or this reader fell behind)` : `lost the connection to the hub while following ${name}`);
    return EXIT.ok;
  } catch (err) {
    if (abort.signal.aborted) return EXIT.ok;
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
    process.stdout.off('error', onSigint);
  }
}
