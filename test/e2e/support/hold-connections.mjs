// Opens `count` connections to host:port at once, each sending one GET of `path`, and holds them.
// Run with plain `node` inside a testbed host's namespace (no TypeScript loader there). Each line
// on stdin asks for a report; stdout gets one JSON line per report: how many connections are still
// open without an answer, were refused with 429, got any other answer, or closed without one.
// Ends (closing every connection) when stdin closes.
import net from 'node:net';
import { createInterface } from 'node:readline';

const [host, port, count, path] = process.argv.slice(2);
const states = [];
const sockets = [];
for (let i = 0; i < Number(count); i++) {
  const socket = net.connect(Number(port), host);
  let head = '';
  states[i] = 'open';
  socket.setEncoding('utf8');
  socket.on('error', () => undefined);
  socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
  socket.on('data', (d) => {
    head += d;
    states[i] = head.startsWith('HTTP/1.1 429 ') ? 'refused' : 'answered';
  });
  socket.on('close', () => {
    if (states[i] === 'open') states[i] = 'closed';
  });
  sockets.push(socket);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', () => {
  const report = { open: 0, refused: 0, answered: 0, closed: 0 };
  for (const s of states) report[s]++;
  process.stdout.write(`${JSON.stringify(report)}\n`);
});
lines.on('close', () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
