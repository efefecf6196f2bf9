/**
 * Allocation-freedom of the packet path (STYLE.md principle 12): after
 * warm-up, 10^6 packets of established flows (TCP data in window, UDP, ICMP
 * echo, ~1000 flows) through Packet.parse + Conntrack.process cause no
 * garbage collection and no heap growth.
 *
 * Measured in a child process (`node --expose-gc test/conntrack/alloc-fixture.mjs`)
 * rather than in the vitest worker, whose own RPC and bookkeeping allocate
 * on the same heap. The child runs plain JavaScript: src/packet,
 * src/conntrack, src/errors.ts and test/helpers/packets.ts transpiled
 * (no type check, no shared dist/) into a private temporary directory.
 * No timing is asserted.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = join(ROOT, "test/conntrack/alloc-fixture.mjs");
let out = "";

function transpile(rel: string): void {
  const js = ts.transpileModule(readFileSync(join(ROOT, rel), "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: rel,
  }).outputText;
  const dest = join(out, rel.replace(/\.ts$/, ".js"));
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, js);
}

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), "sluice-alloc-"));
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  for (const d of ["src/packet", "src/conntrack"]) {
    for (const f of readdirSync(join(ROOT, d))) if (f.endsWith(".ts")) transpile(`${d}/${f}`);
  }
  transpile("src/errors.ts");
  transpile("test/helpers/packets.ts");
});
afterAll(() => {
  if (out !== "") rmSync(out, { recursive: true, force: true });
});

describe("allocation-free packet path", () => {
  it("10^6 established packets: no GC event, heap growth < 1 MB", () => {
    const r = spawnSync(process.execPath, ["--expose-gc", FIXTURE, out, "1000000"], { encoding: "utf8", timeout: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const res = JSON.parse(r.stdout) as {
      packets: number; gcs: number; heapGrowth: number; entries: number; events: number; byCtinfo: number[]; probeGcs: number;
    };
    // The measurement is live: the same observer sees GCs when something allocates.
    expect(res.probeGcs).toBeGreaterThan(0);
    // Every packet matched its established flow, in one direction or the other; nothing was created or invalid.
    expect(res.entries).toBe(1000);
    expect(res.byCtinfo[0] + res.byCtinfo[3]).toBe(res.packets);
    expect(res.byCtinfo[0]).toBeGreaterThan(0);
    expect(res.byCtinfo[3]).toBeGreaterThan(0);
    expect(res.events).toBe(0);
    expect(res.gcs).toBe(0);
    expect(res.heapGrowth).toBeLessThan(1 << 20);
  }, 120_000);
});
