// browser_sdks.mjs — Debian's chromium, headless, loads a page served from
// its own loopback origin that uses the browser SDKs' builds from
// node_modules to send page, track and identify calls to a sluice filter on
// another origin: @segment/analytics-next's standalone build (the one
// Segment's snippet loads from its CDN as analytics.min.js, served here at
// the CDN's path with its bundles), @rudderstack/analytics-js with
// sendBeacon, and @snowplow/browser-tracker twice, POSTing and with
// eventMethod 'get' (GET /i). The SDKs' settings and source-config URLs
// point at this harness, never at a CDN. Writes one
// "id<TAB>event" line per event the SDKs generated to --out, and prints a
// JSON summary (CORS errors the browser reported, requests per path).
//
//   node browser_sdks.mjs --url http://127.0.0.1:FILTER --port ORIGIN_PORT
//        --write-key KEY --out ids.tsv [--rounds 5]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const filter = new URL(args.url);
const writeKey = args['write-key'];
const rounds = Number(args.rounds || 5);
const nm = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules');
const origin = `http://127.0.0.1:${args.port}`;

const files = {
  // what Segment's snippet loads: cdn/analytics.js/v1/<write key>/analytics.min.js
  [`/analytics.js/v1/${writeKey}/analytics.min.js`]: '@segment/analytics-next/dist/umd/standalone.js',
  '/sdk/rudder.js': '@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js',
  '/sdk/snowplow.js': '@snowplow/browser-tracker/dist/index.umd.min.js',
};
// Segment's CDN settings for this write key: events go to the filter.
const segmentSettings = {
  integrations: {
    'Segment.io': { apiKey: writeKey, apiHost: `${filter.host}/v1`, protocol: 'http' },
  },
  plan: {}, edgeFunction: {}, analyticsNextEnabled: true,
};

// The standalone build's chunks, loaded from cdn/analytics-next/bundles/.
const bundles = path.join(nm, '@segment/analytics-next/dist/umd');
for (const f of fs.readdirSync(bundles).filter((n) => /\.bundle\.[0-9a-f]+\.js$/.test(n))) {
  files[`/analytics-next/bundles/${f}`] = path.join('@segment/analytics-next/dist/umd', f);
}

// What Segment's snippet sets up before its script tag (a queue holding
// the write key and, for a CDN of one's own, _cdn); nothing is queued, so
// every call is made on the loaded library and its message id is known.
const page = `<!doctype html><meta charset="utf-8"><title>sdk page</title>
<script>
window.analytics = Object.assign([], { _writeKey: ${JSON.stringify(writeKey)}, _cdn: location.origin, _loadOptions: {} });
</script>
<script src="/analytics.js/v1/${writeKey}/analytics.min.js" data-global-segment-analytics-key="analytics"></script>
<script src="/sdk/rudder.js"></script>
<script src="/sdk/snowplow.js"></script>
<script>
// Every sendBeacon call is also reported to this harness (same origin), so
// the test can tell the SDK really used it on page hide.
const sendBeacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = (url, data) => {
  sendBeacon('/beacon-log?url=' + encodeURIComponent(url), '');
  return sendBeacon(url, data);
};
window.__ids = [];
window.__errors = [];
const seen = (id, event) => window.__ids.push([id, event]);
async function run(filterUrl, writeKey, rounds) {
  // Segment: the standalone build loads its settings and bundles from this
  // harness (_cdn) and replaces window.analytics once it is ready.
  for (let t = 0; !window.analytics.initialized; t++) {
    if (t > 200) throw new Error('analytics.js (standalone) did not load');
    await new Promise((r) => setTimeout(r, 50));
  }
  const seg = window.analytics;
  // RudderStack: source config from this harness, events by sendBeacon.
  const ra = new rudderanalytics.RudderAnalytics();
  await new Promise((loaded) => ra.load(writeKey, filterUrl, {
    configUrl: location.origin, destSDKBaseURL: location.origin + '/none',
    pluginsSDKBaseURL: location.origin + '/none', useBeacon: true,
    beaconQueueOptions: { maxItems: 1000, flushQueueInterval: 600000 },
    onLoaded: () => loaded(), logLevel: 'ERROR',
  }));
  // Snowplow: POST with credentials (a preflighted CORS request), and GET
  // /i with the event in the query string (eventMethod 'get').
  const spSeen = { afterTrack: (p) => seen(p.eid, { pv: 'page_view', se: 'struct', ue: 'link_click' }[p.e]) };
  snowplowBrowserTracking.newTracker('sp', filterUrl, {
    appId: 'shop', encodeBase64: true, eventMethod: 'post', bufferSize: 1, plugins: [spSeen],
  });
  snowplowBrowserTracking.newTracker('spget', filterUrl, {
    appId: 'shop', encodeBase64: true, eventMethod: 'get', plugins: [spSeen],
  });
  for (let i = 0; i < rounds; i++) {
    let c = await seg.page('Shop', 'Home', { round: i });
    seen(c.event.messageId, 'page');
    c = await seg.track('Product Viewed', { round: i, sku: 'sku-' + i });
    seen(c.event.messageId, 'product_viewed');
    c = await seg.identify('user-' + i, { plan: 'pro' });
    seen(c.event.messageId, 'identify');
    ra.page('Shop', 'Home', { round: i }, (e) => seen(e.messageId, 'page'));
    ra.track('Cart Viewed', { round: i }, (e) => seen(e.messageId, 'cart_viewed'));
    ra.identify('user-' + i, { plan: 'pro' }, (e) => seen(e.messageId, 'identify'));
    // each call goes to both trackers: one event by POST, one by GET
    snowplowBrowserTracking.trackPageView({ title: 'Home ' + i });
    snowplowBrowserTracking.trackStructEvent({ category: 'shop', action: 'view', label: 'r' + i });
    snowplowBrowserTracking.trackSelfDescribingEvent({ event: {
      schema: 'iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1',
      data: { targetUrl: 'http://shop.test/' + i } } });
  }
}
</script>`;

const stats = { origin, cors_errors: 0, console: [], sent: {}, beacons: {}, served: {}, not_found: [] };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, origin);
  if (url.pathname === '/page.html') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    return res.end(page);
  }
  if (url.pathname === '/beacon-log') {
    const u = new URL(url.searchParams.get('url'));
    stats.beacons[u.pathname] = (stats.beacons[u.pathname] || 0) + 1;
    res.writeHead(204);
    return res.end();
  }
  if (files[url.pathname]) {
    stats.served[url.pathname.replace(/\.[0-9a-f]{20}\.js$/, '.js')] = true;
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    return res.end(fs.readFileSync(path.join(nm, files[url.pathname])));
  }
  if (url.pathname === `/v1/projects/${writeKey}/settings`) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
    return res.end(JSON.stringify(segmentSettings));
  }
  if (url.pathname.startsWith('/sourceConfig')) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
    return res.end(JSON.stringify({
      isHosted: false,
      source: {
        id: 'src-test', name: 'sluice test', writeKey, enabled: true, workspaceId: 'ws-test',
        config: { statsCollection: { errors: { enabled: false }, metrics: { enabled: false } } },
        destinations: [],
      },
    }));
  }
  if (stats.not_found.length < 10) stats.not_found.push(url.pathname);
  res.writeHead(404);
  res.end();
});
await new Promise((r) => server.listen(Number(args.port), '127.0.0.1', r));

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
});
let ids = [];
try {
  const tab = await browser.newPage();
  tab.on('request', (r) => {
    const u = new URL(r.url());
    if (u.host !== filter.host) return;
    const k = `${r.method()} ${u.pathname} ${r.resourceType()}`;
    stats.sent[k] = (stats.sent[k] || 0) + 1;
  });
  tab.on('console', (m) => {
    const t = m.text();
    if (/CORS/.test(t)) stats.cors_errors++;
    if (m.type() === 'error' && stats.console.length < 10) stats.console.push(t.slice(0, 200));
  });
  await tab.goto(`${origin}/page.html`, { waitUntil: 'load' });
  await tab.evaluate((u, k, n) => run(u, k, n), filter.origin, writeKey, rounds);
  // Let the Snowplow queue drain (one request per event) before leaving.
  await new Promise((r) => setTimeout(r, 2000));
  ids = await tab.evaluate(() => window.__ids);
  // Leaving the page fires pagehide: RudderStack hands its queue to sendBeacon.
  await tab.goto('about:blank', { waitUntil: 'load' });
  await new Promise((r) => setTimeout(r, 2000));
} finally {
  await browser.close();
  server.close();
}
fs.writeFileSync(args.out, ids.map(([id, ev]) => `${id}\t${ev}\n`).join(''));
stats.events = ids.length;
console.log(JSON.stringify(stats));
process.exit(0);
