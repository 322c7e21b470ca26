// bench_post.mjs — the client side of tests/bench/sdk.sh: turns a corpus of
// native events into request bodies of one protocol, all built before the
// clock starts, then POSTs them over keep-alive connections and prints
// {"events", "accepted", "rejected", "elapsed_s", "bytes"} as JSON.
//   --form native    {"events": [...]} to /v1/events, the lines as they are
//   --form ndjson    the lines as they are, one per line, to /v1/events as
//                    application/x-ndjson (what `sluicectl send` posts)
//   --form segment   {"batch": [...], "sentAt"} to /v1/batch: each event as
//                    a Segment track call ("remove_from_cart" becomes
//                    "Remove From Cart", id → messageId, ts → timestamp)
//   node bench_post.mjs --url URL --form F --input FILE --events N
//        [--batch 500] [--concurrency 16] [--ready FILE]
// With --ready, FILE is created once the bodies are built and the sending
// starts at SIGUSR2, so the caller reads the server's CPU around the
// sending alone.
import fs from 'node:fs';
import http from 'node:http';
import readline from 'node:readline';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const url = new URL(args.url);
const form = args.form;
const want = Number(args.events);
const batch = Number(args.batch || 500);
const conc = Number(args.concurrency || 16);

const title = (s) => s.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
function segmentMessage(line) {
  const e = JSON.parse(line);
  return JSON.stringify({
    type: 'track', event: title(e.event), messageId: e.id, timestamp: e.ts,
    anonymousId: e.anonymous_id, userId: e.user_id, context: e.context, properties: e.properties,
  });
}

const bodies = [];
let lines = [], n = 0;
const flush = () => {
  if (!lines.length) return;
  const sentAt = new Date().toISOString();
  const text = form === 'segment' ? `{"batch":[${lines.join(',')}],"sentAt":"${sentAt}"}`
    : form === 'ndjson' ? `${lines.join('\n')}\n` : `{"events":[${lines.join(',')}]}`;
  bodies.push([Buffer.from(text), lines.length]);
  lines = [];
};
const rl = readline.createInterface({ input: fs.createReadStream(args.input) });
for await (const line of rl) {
  if (n++ >= want) break;
  lines.push(form === 'segment' ? segmentMessage(line) : line);
  if (lines.length === batch) flush();
}
flush();
rl.close();

const path = form === 'segment' ? '/v1/batch' : '/v1/events';
const ctype = form === 'ndjson' ? 'application/x-ndjson' : 'application/json';
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const res = { events: 0, accepted: 0, rejected: 0, bytes: 0 };
function post([body, count]) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, method: 'POST', path, agent,
      headers: { 'Content-Type': ctype, 'Content-Length': body.length },
    }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => {
        if (r.statusCode !== 200) return reject(new Error(`HTTP ${r.statusCode} ${Buffer.concat(chunks)}`));
        const j = JSON.parse(Buffer.concat(chunks));
        res.events += count; res.accepted += j.accepted; res.rejected += j.rejected;
        res.bytes += body.length;
        resolve();
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
if (args.ready) {
  const go = new Promise((resolve) => process.once('SIGUSR2', resolve));
  const alive = setInterval(() => {}, 60000); // a signal listener alone does not keep node running
  fs.writeFileSync(args.ready, `${process.pid}\n`);
  await go;
  clearInterval(alive);
}
const start = process.hrtime.bigint();
let next = 0;
await Promise.all(Array.from({ length: conc }, async () => {
  while (next < bodies.length) await post(bodies[next++]);
}));
res.elapsed_s = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify(res));
agent.destroy();
