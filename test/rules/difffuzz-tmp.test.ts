import fc from "fast-check";
import { it } from "vitest";
import { spawnSync } from "node:child_process";
import { RuleError } from "../../src/rules/match-api.js";
import { parseRuleset } from "../../src/rules/parse.js";
import { setNameFiles } from "../../src/rules/names.js";
import { HOSTS, PROTOCOLS } from "./fixtures/index.js";
it("diff", () => {
  setNameFiles({ hosts: HOSTS, protocols: PROTOCOLS });
  const WORDS = ["-A", "-I", "-D", "-N", "-X", "-F", "-P", "-E", "-R", "-Z", "-C", "INPUT", "OUTPUT", "FORWARD", "X", "Y", "1", "2",
    "-s", "-d", "10.0.0.1", "10.0.0.0/8", "10.1.2.3/255.0.255.0", "backup.lan", "10.0.0.1,10.0.0.2", "-i", "-o", "eth0", "eth+",
    "-p", "tcp", "udp", "icmp", "6", "all", "-f", "!", "-m", "tcp", "udp", "conntrack", "comment", "mark", "connmark", "multiport",
    "--dport", "22", "--sport", "--dp", "--syn", "--tcp-flags", "SYN,ACK", "SYN", "--ctstate", "NEW", "--comment", '"a b"',
    "--mark", "0x1", "--dports", "80,443", "-j", "-g", "ACCEPT", "DROP", "RETURN", "LOG", "--log-prefix", "REJECT", "--reject-with",
    "-c", "3", "4", "-v", "--dport=22", "-fv"];
  const G: string[][] = [["-s","10.0.0.1"],["-s","10.0.0.0/8,backup.lan"],["-d","192.168.1.0/24"],["-d","10.1/16"],["-i","eth0"],["-i","eth+"],["-o","wg0"],
    ["-p","tcp"],["-p","udp"],["-p","6"],["-p","icmp"],["-s","10.0.0.0/255.0.255.0"],["-p","tcp","-m","tcp"],["-p","udp","-m","udp","--sport","7"],["--dport","22"],["--sport","1000:2000"],["--syn"],["--tcp-flags","SYN,ACK","SYN"],
    ["-m","conntrack","--ctstate","NEW"],["-m","comment","--comment",'"x y"'],["-m","mark","-m","connmark","--mark","1","--mark","2"],["-p","tcp","-m","multiport","--dports","1,2"],["-m","conntrack","--ctstate","INVALID","!","--ctstatus","SEEN_REPLY"],
    ["-m","limit"],["--limit","1/s"],["-j","ACCEPT"],["-j","DROP"],["-j","LOG"],["-j","X"],["-j","Y"],["-g","X"],["--log-prefix",'"p: "'],["-j","REJECT"],["--reject-with","icmp-host-prohibited"],["-c","1","2"],["!"],["--dp","80"],["--so","1.2.3.4"]];
  const rule = fc.tuple(fc.constantFrom("-A INPUT", "-A X", "-A Y", "-I INPUT", "-I X 2", "-A FORWARD", "-A OUTPUT", "[5:6] -A INPUT"), fc.array(fc.constantFrom(...G), { maxLength: 6 }))
    .map(([h, gs]) => [h, ...gs.flat()].join(" "));
  const line = fc.oneof(
    { weight: 8, arbitrary: rule },
    { weight: 1, arbitrary: fc.constantFrom(":Y - [0:0]", ":INPUT DROP [1:2]", "-N Y", "-X Y", "-F X", "-P INPUT DROP", "-E X Z", "-D INPUT 1", "-Z") },
  );
  const files = fc.sample(fc.array(line, { minLength: 1, maxLength: 5 }).map((ls) => `*filter\n:X - [0:0]\n${ls.join("\n")}\nCOMMIT\n`), { numRuns: 1500, seed: Number(process.env.SEED ?? 7) });
  const ns = `sl-parse-df-${process.pid}`;
  spawnSync("ip", ["netns", "add", ns]);
  spawnSync("mkdir", ["-p", `/etc/netns/${ns}`]); spawnSync("cp", [HOSTS, `/etc/netns/${ns}/hosts`]);
  let mism = 0, acc = 0;
  for (const text of files) {
    let ours = "ok";
    try { parseRuleset(text, "f", 4); acc++; } catch (e) { if (!(e instanceof RuleError)) throw e; ours = e.message; }
    const r = spawnSync("ip", ["netns", "exec", ns, "iptables-legacy-restore", "-c"], { input: text, encoding: "utf8", timeout: 10000 });
    const linuxOk = r.status === 0;
    if (linuxOk !== (ours === "ok")) { mism++; if (mism < 40) console.log(`----\n${text}ours: ${ours}\nlinux: ${r.status} ${r.stderr.split("\n").slice(0,2).join(" | ")}`); }
  }
  spawnSync("ip", ["netns", "del", ns]); spawnSync("rm", ["-rf", `/etc/netns/${ns}`]);
  console.log(`mismatches ${mism} / ${files.length}, sluice accepted ${acc}`);
}, 300000);
