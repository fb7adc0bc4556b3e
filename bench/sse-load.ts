// The reader side of the streaming benchmark, in its own process: `node sse-load.js URL STREAMS` opens
// STREAMS streaming chat requests at once, reads every chunk to its end and prints JSON
// {streams, chunks, p50_ms, p99_ms, max_ms, errors, cpu_s}: how late each chunk arrived after the backend
// stamped it (wall clock, so a constant offset between processes cancels in comparisons), and the CPU
// time this reader used for it.
import { Agent, request } from 'node:http';

const [url, streams] = [process.argv[2], Number(process.argv[3])];
const agent = new Agent({ keepAlive: true, maxSockets: streams });
const body = JSON.stringify({ model: 'sse', stream: true, messages: [{ role: 'user', content: 'hi' }] });
const delays: number[] = [];
let errors = 0;
const now = () => performance.timeOrigin + performance.now();
const cpuSeconds = () => { const { user, system } = process.cpuUsage(); return (user + system) / 1e6; };

function one(): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      if (res.statusCode !== 200) errors++;
      let partial = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        const at = now();
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          const i = line.lastIndexOf('"t":');
          if (i >= 0) delays.push(at - Number(line.slice(i + 4, line.length - 1)));
        }
      });
      res.on('end', resolve);
      res.on('error', () => { errors++; resolve(); });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end(body);
  });
}

await Promise.all(Array.from({ length: streams }, one));
delays.sort((a, b) => a - b);
const q = (p: number) => delays[Math.min(delays.length - 1, Math.floor(delays.length * p))] ?? NaN;
process.stdout.write(JSON.stringify({ streams, chunks: delays.length, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: delays.at(-1) ?? NaN, errors, cpu_s: cpuSeconds() }));
agent.destroy();
