/**
 * One source for the numbers C++ and TypeScript share
 * (scripts/gen-native-constants.mjs): the committed generated files are
 * current, and the built addon reports exactly the values
 * src/io/native-constants.ts holds (the kernel's own values are checked at
 * compile time by static_asserts in constants.h).
 */
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { loadNative } from "../../src/io/native.js";
import { IO_ERR, NATIVE_CONSTANT_GROUPS } from "../../src/io/native-constants.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

describe("native constants", () => {
  it("the generated files are current (gen-native-constants.mjs --check)", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/gen-native-constants.mjs"), "--check"], { encoding: "utf8", timeout: 10_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("the addon's compiled-in values equal the TypeScript ones, name for name", () => {
    const ts: Record<string, number | string> = {};
    for (const [group, values] of Object.entries(NATIVE_CONSTANT_GROUPS)) {
      for (const [name, value] of Object.entries(values)) ts[`${group}.${name}`] = value;
    }
    const native = loadNative().constants;
    expect(native).toEqual(ts);
    expect(Object.keys(native).length).toBeGreaterThan(50);
  });

  it("the addon is Node-API 8", () => {
    expect(loadNative().napiVersion).toBe(8);
  });

  it("a missing build is a clear error naming the fix", async () => {
    vi.resetModules();
    const saved = process.env.SLUICE_NATIVE_ADDON;
    process.env.SLUICE_NATIVE_ADDON = join(ROOT, "native-bindings/build/Release/does-not-exist.node");
    try {
      const fresh = await import("../../src/io/native.js");
      let err: unknown;
      try {
        fresh.loadNative();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(fresh.NativeIoError);
      expect((err as { code: string }).code).toBe(IO_ERR.NOT_BUILT);
      expect((err as Error).message).toMatch(/run npm run build:native/);
    } finally {
      if (saved === undefined) delete process.env.SLUICE_NATIVE_ADDON;
      else process.env.SLUICE_NATIVE_ADDON = saved;
      vi.resetModules();
    }
  });
});
