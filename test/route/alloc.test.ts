/**
 * Allocation-freedom of route lookups (STYLE.md principle 12): after
 * warm-up, 10^6 rounds of isLocal4/lookup4/isLocal6/lookup6 plus reads of
 * the route arrays cause no garbage collection and no heap growth.
 *
 * Measured in a child process (`node --expose-gc test/route/alloc-fixture.mjs`)
 * as test/conntrack/alloc.test.ts does: src/route and src/errors.ts are
 * transpiled (no type check, no shared dist/) into a private temporary
 * directory. No timing is asserted.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
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
  out = mkdtempSync(join(tmpdir(), "sluice-route-alloc-"));
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  for (const f of readdirSync(join(ROOT, "src/route"))) if (f.endsWith(".ts")) transpile(`src/route/${f}`);
  transpile("src/errors.ts");
});
afterAll(() => {
  if (out !== "") rmSync(out, { recursive: true, force: true });
});

describe("allocation-free route lookups", () => {
  it("10^6 rounds of IPv4 and IPv6 lookups: no GC event, heap growth < 256 KB", () => {
    const r = spawnSync(process.execPath, ["--expose-gc", join(ROOT, "test/route/alloc-fixture.mjs"), out, join(ROOT, "test/route/fixtures"), "1000000"], {
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const res = JSON.parse(r.stdout) as { lookups: number; gcs: number; heapGrowth: number; probeGcs: number; sink: number };
    expect(res.probeGcs).toBeGreaterThan(0); // the observer sees GCs when something allocates
    expect(res.sink).not.toBe(0);
    expect(res.gcs).toBe(0);
    expect(res.heapGrowth).toBeLessThan(256 * 1024);
  });
});
