// Times the same operations as bindings/uniffi/examples/rust_timing.rs and
// bindings/uniffi/tests/timing.py: a 1:1 message (send to an account with one device, then
// that device receives it) and a group message (3 accounts of one device, key already
// distributed: send, then one member receives it). Results in microseconds per message.
import init, { createAccount } from "../pkg/ratchetry_wasm.js";

const N = Number(new URLSearchParams(location.search).get("n") || 300);

function ready(out) { if (out.kind !== "ready") throw new Error(out.kind); return out.outbox; }

async function main() {
  await init();
  const now = Date.now();
  const [a, b, c] = [createAccount(now), createAccount(now), createAccount(now)];
  const all = [a, b, c];
  for (const x of all) for (const y of all) x.device.updateDeviceList(now, y.primary.accountKey(), y.primary.deviceList());
  for (const x of all) for (const y of all) if (x !== y) x.device.startSessions(now, [{ device: y.device.address(), bundle: y.device.prekeyBundle() }]);
  const body = new TextEncoder().encode("a message of about forty bytes, typical");
  // Warm up and establish both directions.
  for (let i = 0; i < 5; i++) {
    b.device.receive(now, ready(a.device.send(now, b.primary.accountKey(), body)).envelopes[0].bytes);
    a.device.receive(now, ready(b.device.send(now, a.primary.accountKey(), body)).envelopes[0].bytes);
  }
  let t = performance.now();
  for (let i = 0; i < N; i++) {
    const env = ready(a.device.send(now, b.primary.accountKey(), body)).envelopes[0].bytes;
    b.device.receive(now, env);
  }
  const direct = ((performance.now() - t) * 1000) / N;

  const group = new Uint8Array(32).fill(9);
  const members = all.map((x) => x.primary.accountKey());
  for (const x of all) x.device.setGroupMembers(group, members);
  const first = ready(a.device.sendGroup(now, group, body));
  for (const e of first.envelopes) (e.to.device === 1 && hexEq(e.to.account, b.primary.accountKey()) ? b : c).device.receive(now, e.bytes);
  b.device.receive(now, first.group.bytes);
  t = performance.now();
  for (let i = 0; i < N; i++) {
    const out = ready(a.device.sendGroup(now, group, body));
    b.device.receive(now, out.group.bytes);
  }
  const groupUs = ((performance.now() - t) * 1000) / N;
  window.bench = { n: N, direct_us: Math.round(direct * 10) / 10, group_us: Math.round(groupUs * 10) / 10 };
  document.getElementById("out").textContent = JSON.stringify(window.bench);
}

function hexEq(x, y) { return x.length === y.length && x.every((v, i) => v === y[i]); }

main().catch((e) => { window.bench = { error: `${e.code || ""} ${e.message}` }; });
