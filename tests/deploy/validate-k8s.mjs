// validate-k8s.mjs — checks the objects rendered by `kubectl kustomize` for
// one kustomization: each is validated against the Kubernetes schemas of the
// kubernetes-models package (tests/node), then sluice's own rules are checked
// (probes, resources, hardening, PDBs, HPAs, the filter Service, the sweep
// CronJob, grace period vs the filter's flush age, references that resolve).
//
// usage: node validate-k8s.mjs RENDERED.json [--external Kind/name ...]
//   RENDERED.json: a JSON array of the rendered objects.
//   --external: a Secret or ConfigMap that is created out of band.
// Prints "# ..." for each problem and exits 1 if there is any.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const models = path.join(here, "..", "node", "node_modules", "kubernetes-models");
const problems = [];
const fail = (msg) => problems.push(msg);

const args = process.argv.slice(2);
const file = args.shift();
const external = new Set();
while (args.length) {
  const a = args.shift();
  if (a === "--external") external.add(args.shift());
  else throw new Error(`unknown argument ${a}`);
}
const objects = JSON.parse(fs.readFileSync(file, "utf8")).filter((o) => o);

// ---- schemas -----------------------------------------------------------
async function modelClass(apiVersion, kind) {
  // "apps/v1" -> apps/v1/Deployment.js; "v1" -> v1/ConfigMap.js
  const file = path.join(models, ...apiVersion.split("/"), `${kind}.js`);
  if (!fs.existsSync(file)) return null;
  const mod = await import(pathToFileURL(file).href);
  return mod[kind] ?? null;
}

for (const o of objects) {
  const id = `${o.kind}/${o.metadata?.name}`;
  if (!o.apiVersion || !o.kind || !o.metadata?.name) {
    fail(`${id}: apiVersion, kind and metadata.name are required`);
    continue;
  }
  const Cls = await modelClass(o.apiVersion, o.kind);
  if (!Cls) {
    fail(`${id}: no schema for ${o.apiVersion} ${o.kind} (unknown or removed API)`);
    continue;
  }
  try {
    new Cls(o).validate();
  } catch (e) {
    fail(`${id}: schema: ${e.message}`);
  }
}

// ---- sluice's rules ----------------------------------------------------
const byKind = (kind) => objects.filter((o) => o.kind === kind);
const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const labelsMatch = (sel, labels) =>
  sel && Object.entries(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels?.[k] === v);
const STAGES = ["filter", "dispatcher", "combiner", "splitter"];

function parseDuration(s) {
  // the subset of the programs' duration syntax that configs use
  let ms = 0;
  const re = /(\d+)(ms|s|m|h|d)/g;
  let m, seen = "";
  while ((m = re.exec(s))) {
    ms += Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
    seen += m[0];
  }
  if (s === "0") return 0;
  if (seen !== s) throw new Error(`bad duration ${s}`);
  return ms;
}

// The config file: the ConfigMap generated from sluice.json.
const configMaps = byKind("ConfigMap");
const cfgMap = configMaps.find((c) => c.metadata.name.startsWith("sluice-config"));
let config = {};
if (!cfgMap || !cfgMap.data?.["sluice.json"]) fail("no sluice-config ConfigMap with sluice.json");
else {
  try {
    config = JSON.parse(cfgMap.data["sluice.json"]);
  } catch (e) {
    fail(`sluice.json in the ConfigMap does not parse: ${e.message}`);
  }
}
const envMap = configMaps.find((c) => c.metadata.name.startsWith("sluice-env"));
if (!envMap) fail("no sluice-env ConfigMap");
else {
  for (const k of ["SLUICE_CONFIG", "SLUICE_STORE", "SLUICE_LEASES", "SLUICE_ADMIN"])
    if (!envMap.data?.[k]) fail(`sluice-env has no ${k}`);
  if (envMap.data?.SLUICE_ADMIN && !/:9100$/.test(envMap.data.SLUICE_ADMIN))
    fail("SLUICE_ADMIN must listen on port 9100 (the probes and scrape use it)");
}

function checkPodSpec(id, spec, program) {
  const psc = spec.securityContext ?? {};
  if (psc.runAsNonRoot !== true) fail(`${id}: pod securityContext.runAsNonRoot is not true`);
  if (spec.automountServiceAccountToken !== false) fail(`${id}: a service account token is mounted`);
  const c = spec.containers?.[0];
  if (!c) return fail(`${id}: no container`);
  const sc = c.securityContext ?? {};
  if (sc.readOnlyRootFilesystem !== true) fail(`${id}: root filesystem is writable`);
  if (sc.allowPrivilegeEscalation !== false) fail(`${id}: privilege escalation allowed`);
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) fail(`${id}: capabilities not dropped`);
  for (const r of ["requests", "limits"])
    for (const k of ["cpu", "memory"])
      if (!c.resources?.[r]?.[k]) fail(`${id}: no resources.${r}.${k}`);
  if (JSON.stringify(c.command?.slice(0, program.length)) !== JSON.stringify(program))
    fail(`${id}: command is ${JSON.stringify(c.command)}, want ${JSON.stringify(program)}`);
  // every ConfigMap and Secret it names exists (or is declared external)
  const refs = [];
  for (const v of spec.volumes ?? []) {
    if (v.configMap) refs.push(["ConfigMap", v.configMap.name]);
    if (v.secret) refs.push(["Secret", v.secret.secretName]);
  }
  for (const ct of spec.containers) {
    for (const e of ct.envFrom ?? []) {
      if (e.configMapRef) refs.push(["ConfigMap", e.configMapRef.name]);
      if (e.secretRef) refs.push(["Secret", e.secretRef.name]);
    }
    for (const e of ct.env ?? []) {
      if (e.valueFrom?.configMapKeyRef) refs.push(["ConfigMap", e.valueFrom.configMapKeyRef.name]);
      if (e.valueFrom?.secretKeyRef) refs.push(["Secret", e.valueFrom.secretKeyRef.name]);
    }
  }
  for (const [kind, name] of refs)
    if (!find(kind, name) && !external.has(`${kind}/${name}`))
      fail(`${id}: refers to ${kind} ${name}, which is neither rendered nor declared external`);
  if (spec.serviceAccountName && !find("ServiceAccount", spec.serviceAccountName))
    fail(`${id}: service account ${spec.serviceAccountName} is not rendered`);
  const mounts = (c.volumeMounts ?? []).map((m) => m.mountPath);
  if (!mounts.includes("/etc/sluice")) fail(`${id}: the config is not mounted at /etc/sluice`);
  return c;
}

const deployments = {};
for (const stage of STAGES) {
  const d = byKind("Deployment").find(
    (o) =>
      o.metadata.labels?.["app.kubernetes.io/part-of"] === "sluice" &&
      o.metadata.labels?.["app.kubernetes.io/component"] === stage,
  );
  const id = `Deployment sluice-${stage}`;
  if (!d) {
    fail(`${id}: missing`);
    continue;
  }
  deployments[stage] = d;
  const spec = d.spec.template.spec;
  if (!labelsMatch(d.spec.selector.matchLabels, d.spec.template.metadata.labels))
    fail(`${id}: selector does not match its pod labels`);
  const c = checkPodSpec(id, spec, [`sluice-${stage}`]);
  if (!c) continue;
  const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  if (ports.admin !== 9100) fail(`${id}: no container port "admin" 9100`);
  for (const [probe, p] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
    const g = c[probe]?.httpGet;
    if (!g || g.path !== p || (g.port !== "admin" && g.port !== 9100))
      fail(`${id}: ${probe} is not GET ${p} on the admin port`);
  }
  const grace = spec.terminationGracePeriodSeconds;
  if (!(grace > 0)) fail(`${id}: no terminationGracePeriodSeconds`);
  if (stage === "filter") {
    let flushMs = 1000; // the filter's default --flush-age
    try {
      const f = config["sluice-filter"]?.flush_age;
      if (f !== undefined) flushMs = parseDuration(f);
    } catch (e) {
      fail(`${id}: ${e.message}`);
    }
    const pre = c.lifecycle?.preStop?.exec?.command;
    const preMs = pre && pre[0] === "sleep" ? Number(pre[1]) * 1000 : 0;
    if (!(grace * 1000 > flushMs + preMs))
      fail(`${id}: grace ${grace}s is not longer than flush age ${flushMs}ms + preStop ${preMs}ms`);
    if (!ports.http) fail(`${id}: no container port "http"`);
  }
}

// PodDisruptionBudgets: one per stage, selecting that stage's pods.
for (const stage of STAGES) {
  const d = deployments[stage];
  if (!d) continue;
  const pdb = byKind("PodDisruptionBudget").find((p) =>
    labelsMatch(p.spec.selector?.matchLabels, d.spec.template.metadata.labels),
  );
  if (!pdb) fail(`no PodDisruptionBudget selects the ${stage} pods`);
}
// HPAs for the stages that scale out.
for (const stage of ["filter", "combiner", "splitter"]) {
  const d = deployments[stage];
  const hpa = byKind("HorizontalPodAutoscaler").find(
    (h) => h.spec.scaleTargetRef.kind === "Deployment" && d && h.spec.scaleTargetRef.name === d.metadata.name,
  );
  if (!hpa) fail(`no HorizontalPodAutoscaler scales the ${stage}`);
  else if (!(hpa.spec.minReplicas >= 1 && hpa.spec.minReplicas <= hpa.spec.maxReplicas))
    fail(`HorizontalPodAutoscaler ${hpa.metadata.name}: minReplicas/maxReplicas out of order`);
}
for (const h of byKind("HorizontalPodAutoscaler"))
  if (!find(h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name))
    fail(`HorizontalPodAutoscaler ${h.metadata.name}: target ${h.spec.scaleTargetRef.name} is not rendered`);
// The filter's Service.
const svc = byKind("Service").find(
  (s) => deployments.filter && labelsMatch(s.spec.selector, deployments.filter.spec.template.metadata.labels),
);
if (!svc) fail("no Service selects the filter pods");
else if (!svc.spec.ports.some((p) => p.targetPort === "http" || p.targetPort === 8080))
  fail(`Service ${svc.metadata.name} does not target the filter's ingest port`);
// The retention sweep.
const cron = byKind("CronJob").find((c) =>
  (c.spec.jobTemplate.spec.template.spec.containers ?? []).some(
    (ct) => ct.command?.[0] === "sluicectl" && ct.command?.[1] === "sweep",
  ),
);
if (!cron) fail("no CronJob runs `sluicectl sweep`");
else {
  checkPodSpec(`CronJob ${cron.metadata.name}`, cron.spec.jobTemplate.spec.template.spec, ["sluicectl", "sweep"]);
  if (cron.spec.concurrencyPolicy !== "Forbid") fail("the sweep CronJob may run twice at once");
}

for (const p of problems) console.log(`# ${p}`);
console.log(`# ${objects.length} objects checked, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
