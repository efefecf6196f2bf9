/**
 * scripts/lab.sh: the three-namespace lab comes up with working v4 and v6
 * forwarding through the gateway, and `down` removes every namespace and
 * veth it made, also after an `up` that stopped halfway (killed, or a failing
 * step). Needs root, iproute2 and ping; every spawn is bounded.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
const LAB = join(ROOT, "scripts/lab.sh");
const PREFIX = `sl-labt-${process.pid}`;
const made: string[] = [];
const tmp = mkdtempSync(join(tmpdir(), "sluice-lab-test-"));

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(argv: string[], env: NodeJS.ProcessEnv = process.env, timeout = 30_000): Run {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout, killSignal: "SIGKILL", env });
  return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? "" };
}

function lab(args: string[], env?: NodeJS.ProcessEnv): Run {
  return run(["bash", LAB, ...args], env);
}

/** KEY=VALUE lines as printed by `lab.sh up` / `env` (values need no unquoting here). */
function parseEnv(out: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

function namespaces(): string[] {
  return run(["ip", "netns", "list"]).out.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n !== "");
}

function labNamespaces(name: string): string[] {
  return namespaces().filter((n) => n.startsWith(`${name}-`));
}

/** Names of the veths in the caller's (root) namespace (the lab's are made inside its namespaces and must never show up here). */
function rootLinks(): string[] {
  return run(["ip", "-o", "link", "show", "type", "veth"]).out.split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) => n !== "");
}

function newName(tag: string): string {
  const name = `${PREFIX}-${tag}`;
  made.push(name);
  return name;
}

afterAll(() => {
  for (const name of made) lab(["down", name]);
  rmSync(tmp, { recursive: true, force: true });
});

describe("scripts/lab.sh", { timeout: 60_000 }, () => {
  it("up prints shell assignments, forwards v4 and v6 client→server, down removes everything", async () => {
    const name = newName("a");
    const linksBefore = rootLinks();
    const up = lab(["up", name]);
    expect(up.err).toContain("is up");
    expect(up.code).toBe(0);
    const env = parseEnv(up.out);
    expect(env).toMatchObject({
      LAB_NAME: name,
      CLIENT_NS: `${name}-client`,
      GATEWAY_NS: `${name}-gateway`,
      SERVER_NS: `${name}-server`,
      GATEWAY_LAN_IF: "lan0",
      GATEWAY_WAN_IF: "wan0",
      CLIENT_IP4: "10.0.1.2",
      SERVER_IP4: "203.0.113.2",
      CLIENT_IP6: "2001:db8:1::2",
      SERVER_IP6: "2001:db8:2::2",
    });
    // stdout is nothing but assignments: a shell can eval it.
    expect(up.out.trim().split("\n").every((l) => /^[A-Z0-9_]+=\S+$/.test(l))).toBe(true);
    writeFileSync(join(tmp, "lab.env"), up.out);
    const viaBash = run(["bash", "-c", `eval "$(cat ${join(tmp, "lab.env")})"; echo "$GATEWAY_NS $SERVER_IP6"`]);
    expect(viaBash.out.trim()).toBe(`${name}-gateway 2001:db8:2::2`);
    expect(labNamespaces(name).sort()).toEqual([`${name}-client`, `${name}-gateway`, `${name}-server`]);
    expect(parseEnv(lab(["env", name]).out)).toEqual(env);
    expect(lab(["list"]).out.split("\n")).toContain(name);

    // Through the gateway, both families; the server's reply path goes back through it too.
    const ping4 = lab(["exec", name, "client", "ping", "-c", "2", "-i", "0.2", "-W", "2", env.SERVER_IP4!]);
    expect(ping4.code, ping4.out + ping4.err).toBe(0);
    const ping6 = lab(["exec", name, "client", "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", env.SERVER_IP6!]);
    expect(ping6.code, ping6.out + ping6.err).toBe(0);
    const ttl = /ttl=(\d+)/.exec(ping4.out)?.[1];
    expect(ttl).toBe("63"); // one router on the way
    // The gateway forwards; the client has no direct route to the server.
    expect(lab(["exec", name, "gateway", "sysctl", "-n", "net.ipv4.ip_forward"]).out.trim()).toBe("1");
    expect(lab(["exec", name, "client", "ip", "route", "show", "default"]).out).toContain("via 10.0.1.1");

    // A second `up` with the same name refuses and leaves the running lab alone.
    const again = lab(["up", name]);
    expect(again.code).toBe(1);
    expect(again.err).toContain("exists already");
    expect(labNamespaces(name)).toHaveLength(3);
    expect(lab(["exec", name, "client", "ping", "-c", "1", "-W", "2", env.SERVER_IP4!]).code).toBe(0);

    // A process left running in the lab does not keep it alive.
    const sleeper = spawn("bash", [LAB, "exec", name, "gateway", "sleep", "60"], { stdio: "ignore" });
    const exited = new Promise<void>((done) => sleeper.on("exit", () => done()));
    try {
      for (let i = 0; i < 50 && !run(["ip", "netns", "pids", `${name}-gateway`]).out.includes(String(sleeper.pid)); i++) {
        run(["sleep", "0.1"]);
      }
      expect(run(["ip", "netns", "pids", `${name}-gateway`]).out).toContain(String(sleeper.pid));
      const down = lab(["down", name]);
      expect(down.code, down.err).toBe(0);
      expect(down.err).toContain("ending processes");
      expect(labNamespaces(name)).toEqual([]);
      expect(rootLinks().sort()).toEqual(linksBefore.sort());
      await Promise.race([exited, new Promise((_, fail) => setTimeout(() => fail(new Error("sleeper still running")), 5000))]);
    } finally {
      if (sleeper.exitCode === null && sleeper.signalCode === null) sleeper.kill("SIGKILL");
    }
    // down on a lab that is gone is fine.
    expect(lab(["down", name]).code).toBe(0);
  });

  it("parallel labs with different names do not collide", () => {
    const a = newName("p1");
    const b = newName("p2");
    expect(lab(["up", a]).code).toBe(0);
    expect(lab(["up", b]).code).toBe(0);
    expect(lab(["exec", a, "client", "ping", "-c", "1", "-W", "2", "203.0.113.2"]).code).toBe(0);
    expect(lab(["exec", b, "client", "ping", "-6", "-c", "1", "-W", "2", "2001:db8:2::2"]).code).toBe(0);
    expect(lab(["down", a]).code).toBe(0);
    expect(labNamespaces(a)).toEqual([]);
    expect(labNamespaces(b)).toHaveLength(3);
    expect(lab(["exec", b, "client", "ping", "-c", "1", "-W", "2", "203.0.113.2"]).code).toBe(0);
    expect(lab(["down", b]).code).toBe(0);
    expect(labNamespaces(b)).toEqual([]);
  });

  it("down cleans up after an up that was stopped halfway, at every step", () => {
    const linksBefore = rootLinks();
    for (const step of [1, 2, 3, 4, 5, 6]) {
      const name = newName(`h${step}`);
      const up = lab(["up", name], { ...process.env, SLUICE_LAB_FAIL_AT: String(step) });
      expect(up.code).toBe(1);
      expect(up.out).toBe(""); // nothing to eval
      expect(labNamespaces(name)).toHaveLength(3); // left behind, as after a kill
      const down = lab(["down", name]);
      expect(down.code, down.err).toBe(0);
      expect(labNamespaces(name)).toEqual([]);
    }
    expect(rootLinks().sort()).toEqual(linksBefore.sort());
  });

  it("an up whose step fails removes what it created", () => {
    // An `ip` that refuses to make veths, earlier in PATH than the real one.
    const realIp = run(["bash", "-c", "command -v ip"]).out.trim();
    const fakeDir = join(tmp, "bin");
    run(["mkdir", "-p", fakeDir]);
    writeFileSync(
      join(fakeDir, "ip"),
      `#!/bin/sh\ncase " $* " in *" type veth "*) echo "ip: simulated failure" >&2; exit 2;; esac\nexec ${realIp} "$@"\n`,
    );
    chmodSync(join(fakeDir, "ip"), 0o755);
    const name = newName("f");
    const up = lab(["up", name], { ...process.env, PATH: `${fakeDir}:${process.env.PATH ?? ""}` });
    expect(up.code).toBe(1);
    expect(up.out).toBe("");
    expect(up.err).toContain("simulated failure");
    expect(up.err).toContain("removing lab");
    expect(labNamespaces(name)).toEqual([]);
  });

  it("a refused up leaves a namespace that was there before alone", () => {
    const name = newName("o");
    expect(run(["ip", "netns", "add", `${name}-server`]).code).toBe(0);
    const up = lab(["up", name]);
    expect(up.code).toBe(1);
    expect(labNamespaces(name)).toEqual([`${name}-server`]);
    expect(lab(["down", name]).code).toBe(0);
    expect(labNamespaces(name)).toEqual([]);
  });

  it("rejects bad names and roles", () => {
    expect(lab(["up", "bad name"]).code).toBe(1);
    expect(lab(["up", "-x"]).code).not.toBe(0);
    expect(lab(["exec", `${PREFIX}-none`, "router", "true"]).code).toBe(1);
    expect(lab(["exec", `${PREFIX}-none`, "client", "true"]).err).toContain("no namespace");
    expect(lab([]).code).toBe(2);
  });
});
