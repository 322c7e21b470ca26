// sdk_clients.mjs — drives the real server SDKs (@segment/analytics-node,
// @rudderstack/rudder-sdk-node, @snowplow/node-tracker) against a sluice
// filter, the way an application would, and writes what each event should
// become in sluice: one "id<TAB>event" line per event the SDK generated (its
// own messageId / eid), to --out.
//
// The SDKs talk to the filter through a small relay on loopback that
// forwards every request and, for every --lose'th one, answers the client
// 503 after the filter has stored the batch (a lost answer): the SDK then
// retries the same batch with the same ids, which must come out exactly once.
//
//   node sdk_clients.mjs --url http://127.0.0.1:PORT --out ids.tsv
//        [--count 3000] [--lose 5] [--write-key KEY] [--sdk segment,rudder,snowplow]
import fs from 'node:fs';
import http from 'node:http';
import { Analytics as SegmentAnalytics } from '@segment/analytics-node';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import {
  newTracker, buildPageView, buildPagePing, buildStructEvent, buildSelfDescribingEvent,
  buildScreenView, buildEcommerceTransaction, buildEcommerceTransactionItem,
} from '@snowplow/node-tracker';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const target = new URL(args.url);
const count = Number(args.count || 3000);
const lose = Number(args.lose || 5);
const writeKey = args['write-key'] || 'test-write-key';
const sdks = (args.sdk || 'segment,rudder,snowplow').split(',');
const out = fs.createWriteStream(args.out);
const stats = { requests: 0, lost: 0, byPath: {} };

// The relay: forwards the request as it is; every lose'th answer is lost.
const relay = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const n = ++stats.requests;
    stats.byPath[req.url.split('?')[0]] = (stats.byPath[req.url.split('?')[0]] || 0) + 1;
    const fwd = http.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url,
      headers: req.headers,
    }, (fres) => {
      const body = [];
      fres.on('data', (c) => body.push(c));
      fres.on('end', () => {
        if (lose > 0 && n % lose === 0 && fres.statusCode === 200) {
          stats.lost++;
          res.writeHead(503, { 'Retry-After': '0', 'Content-Type': 'application/json' });
          res.end('{"error":"lost"}');
          return;
        }
        res.writeHead(fres.statusCode, fres.headers);
        res.end(Buffer.concat(body));
      });
    });
    fwd.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
    fwd.end(Buffer.concat(chunks));
  });
});
await new Promise((r) => relay.listen(0, '127.0.0.1', r));
const relayUrl = `http://127.0.0.1:${relay.address().port}`;

const expect = (id, event) => out.write(`${id}\t${event}\n`);
const trackNames = [['Order Completed', 'order_completed'], ['ProductViewed', 'product_viewed'],
  ['checkout-started', 'checkout_started'], ['Signed Up', 'signed_up']];

// Segment-style calls shared by the two Segment-protocol SDKs. send(type,
// params, cb) makes the call; cb(err, id) is called once it is delivered.
async function segmentCalls(name, send) {
  let pending = 0, failed = 0;
  await new Promise((done) => {
    const finish = () => { if (--pending === 0) done(); };
    for (let i = 0; i < count; i++) {
      const kind = i % 6;
      const userId = `${name}-user-${i % 97}`;
      let type, params, event;
      if (kind === 0) {
        const [n, e] = trackNames[(i / 6) % trackNames.length];
        type = 'track'; event = e;
        params = { userId, event: n, properties: { i, price: 9.99, tags: ['a', 'b'] } };
      } else if (kind === 1) {
        type = 'identify'; event = 'identify';
        params = { userId, traits: { email: `${userId}@example.com`, plan: 'pro' } };
      } else if (kind === 2) {
        type = 'page'; event = 'page'; params = { userId, name: 'Home', properties: { path: '/' } };
      } else if (kind === 3) {
        type = 'screen'; event = 'screen'; params = { anonymousId: `anon-${i}`, name: 'Settings' };
      } else if (kind === 4) {
        type = 'group'; event = 'group'; params = { userId, groupId: `g${i % 13}`, traits: { size: i } };
      } else {
        type = 'alias'; event = 'alias'; params = { userId, previousId: `anon-${i}` };
      }
      pending++;
      send(type, params, event, (err, id) => {
        if (err) failed++;
        else expect(id, event);
        finish();
      });
    }
  });
  if (failed) throw new Error(`${name}: ${failed} calls were not delivered`);
}

async function runSegment() {
  const a = new SegmentAnalytics({
    writeKey, host: relayUrl, flushAt: 50, flushInterval: 200, maxRetries: 10,
  });
  await segmentCalls('segment', (type, params, event, cb) => {
    a[type](params, (err, ctx) => cb(err, ctx && ctx.event.messageId));
  });
  await a.closeAndFlush({ timeout: 60000 });
}

async function runRudder() {
  const ids = new Map(); // the SDK's message, seen by its hook, by our call number
  let call = 0;
  const a = new RudderAnalytics(writeKey, {
    dataPlaneUrl: relayUrl, flushAt: 50, flushInterval: 200, retryCount: 10,
    axiosRetryConfig: { retryDelay: () => 50 },
    beforeEnqueue: (ev) => { ids.set(ev.properties?.callNo ?? ev.traits?.callNo ??
      ev.context?.traits?.callNo, ev.messageId); return ev; },
    logLevel: 'error',
  });
  await segmentCalls('rudder', (type, params, event, cb) => {
    const no = call++;
    const p = structuredClone(params);
    // a call number the hook can read back, carried in the event's own data
    if (type === 'identify' || type === 'group') p.traits = { ...(p.traits || {}), callNo: no };
    else p.properties = { ...(p.properties || {}), callNo: no };
    a[type](p, (err) => cb(err, ids.get(no)));
  });
  await a.flush();
}

async function runSnowplow() {
  let failures = 0;
  const t = newTracker({ namespace: 'sdk-test', appId: 'sluice-test', encodeBase64: true }, {
    endpoint: `127.0.0.1`, port: Number(relayUrl.split(':')[2]), protocol: 'http',
    eventMethod: 'post', bufferSize: 50, connectionTimeout: 10000,
    customHeaders: { 'X-Api-Key': writeKey }, // the tp2 protocol has no key of its own
    onRequestFailure: () => { failures++; },
  });
  const plainT = newTracker({ namespace: 'sdk-plain', appId: 'sluice-test', encodeBase64: false }, {
    endpoint: `127.0.0.1`, port: Number(relayUrl.split(':')[2]), protocol: 'http',
    eventMethod: 'post', bufferSize: 50, customHeaders: { 'X-Api-Key': writeKey },
    onRequestFailure: () => { failures++; },
  });
  const ctx = [{ schema: 'iglu:com.acme/user_ctx/jsonschema/1-0-0', data: { tier: 'gold' } }];
  for (let i = 0; i < count; i++) {
    const tr = i % 2 ? t : plainT; // base64 (ue_px, cx) and plain (ue_pr, co)
    let p, event;
    switch (i % 7) {
      case 0: p = tr.track(buildPageView({ pageUrl: `http://shop.test/p/${i}`, pageTitle: 'P' }), ctx); event = 'page_view'; break;
      case 1: p = tr.track(buildPagePing({ pageUrl: 'http://shop.test/', minXOffset: 0, maxXOffset: 1, minYOffset: 0, maxYOffset: i })); event = 'page_ping'; break;
      case 2: p = tr.track(buildStructEvent({ category: 'shop', action: 'add', label: `l${i}`, value: i })); event = 'struct'; break;
      case 3: p = tr.track(buildSelfDescribingEvent({ event: { schema: 'iglu:com.acme/button_click/jsonschema/1-0-0', data: { id: `b${i}`, n: i } } }), ctx); event = 'button_click'; break;
      case 4: p = tr.track(buildScreenView({ name: 'Settings', id: `s${i}` })); event = 'screen_view'; break;
      case 5: p = tr.track(buildEcommerceTransaction({ orderId: `o${i}`, total: 10.5 })); event = 'transaction'; break;
      default: p = tr.track(buildEcommerceTransactionItem({ orderId: `o${i}`, sku: 'sku', price: 2, quantity: 1 })); event = 'transaction_item';
    }
    expect(p.eid, event);
    // The trackers' in-memory stores hold 1,000 events: send as we go, as
    // a long-running service's emitter does.
    if (i % 200 === 199) await Promise.all([t.flush(), plainT.flush()]);
  }
  // Lost answers stay in the trackers' stores: flush until every event went.
  for (let round = 0; round < 50; round++) {
    const before = failures;
    await t.flush();
    await plainT.flush();
    if (failures === before) break;
  }
}

try {
  for (const s of sdks) {
    if (s === 'segment') await runSegment();
    else if (s === 'rudder') await runRudder();
    else if (s === 'snowplow') await runSnowplow();
    else throw new Error(`unknown sdk ${s}`);
  }
} finally {
  await new Promise((r) => out.end(r));
  relay.close();
  console.error(JSON.stringify(stats));
}
process.exit(0);
