// The Restate side of durable's benchmarks: the services restate-server invokes.
//
//   RESTATE_PEER_DIR=... node services.mjs        # prints {"port": N} once it listens
//
// - "counter", a Virtual Object (Restate's entity: keyed state, one exclusive handler at a
//   time per key): `add(n)` adds n and returns the new value (W9), `get` is a shared
//   (read-only, concurrent) handler returning the current value.
// - "hello", a plain service whose `sequence` handler runs three journaled steps one after
//   the other (`ctx.run`), the same shape as durable's W1 orchestration with 3 activities.
//
// The SDK is loaded from the peer folder that setup.sh filled (outside the repository).

import http2 from "node:http2";
import { createRequire } from "node:module";
import path from "node:path";

const peerDir = process.env.RESTATE_PEER_DIR;
if (!peerDir) {
  console.error("RESTATE_PEER_DIR is not set (run setup.sh)");
  process.exit(2);
}
const restate = createRequire(path.join(peerDir, "package.json"))("@restatedev/restate-sdk");

const counter = restate.object({
  name: "counter",
  handlers: {
    add: async (ctx, amount) => {
      const value = ((await ctx.get("value")) ?? 0) + amount;
      ctx.set("value", value);
      return value;
    },
    get: restate.handlers.object.shared(async (ctx) => (await ctx.get("value")) ?? 0),
  },
});

const greet = (city) => `Hello ${city}!`;

const hello = restate.service({
  name: "hello",
  handlers: {
    sequence: async (ctx) => {
      const results = [];
      for (const city of ["Tokyo", "Seattle", "London"]) {
        results.push(await ctx.run(`say_hello ${city}`, () => greet(city)));
      }
      return results;
    },
  },
});

// HTTP/2 cleartext (what restate-server speaks to a deployment), on a free loopback port.
const server = http2.createServer(restate.createEndpointHandler({ services: [counter, hello] }));
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => process.exit(0));
}
