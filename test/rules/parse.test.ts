/**
 * The iptables-restore parser (src/rules/parse.ts): words, addresses, the
 * fixtures (realistic save files and untidy hand-edited ones), how options
 * are split between matches and targets, the commands, and one test per
 * refusal with its exact file:line:col and message.
 *
 * Linux is the oracle: when run as root with iptables 1.8.9 and network
 * namespaces, every fixture is restored into a scratch namespace, saved back
 * with iptables-save, and the rules Linux kept must have the shape sluice
 * parsed (chains, policies, counters, addresses, interfaces, protocols,
 * matches, targets, in order); and every refusal sluice shares with Linux
 * must be refused by iptables-restore too. Without root those tests skip.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RuleNode, RulesetNode } from "../../src/rules/ast.js";
import { RuleError } from "../../src/rules/match-api.js";
import { setNameFiles } from "../../src/rules/names.js";
import { findLoops, parseAddress, parseRuleset, tokenizeLine } from "../../src/rules/parse.js";
import { formatRuleset } from "../../src/rules/save.js";
import { FIXTURES, HOSTS, PROTOCOLS, ORACLE, fixtureText, linuxRestore, shape, stripPos, stripSpelling } from "./fixtures/index.js";

beforeAll(() => setNameFiles({ hosts: HOSTS, protocols: PROTOCOLS }));
afterAll(() => setNameFiles({ hosts: "/etc/hosts", protocols: "/etc/protocols" }));

const P = { file: "t", line: 1, col: 1 };

/** Parses a filter-table body (lines between `*filter` and COMMIT). */
function filter(body: string, family: 4 | 6 = 4): RulesetNode {
  return parseRuleset(`*filter\n${body}\nCOMMIT\n`, "t.rules", family);
}

function chain(rs: RulesetNode, table: string, name: string) {
  const c = rs.tables.find((t) => t.name === table)?.chains.find((ch) => ch.name === name);
  if (c === undefined) throw new Error(`no chain ${table}/${name}`);
  return c;
}

function errorOf(f: () => unknown): RuleError {
  try {
    f();
  } catch (e) {
    if (e instanceof RuleError) return e;
    throw e;
  }
  throw new Error("no error");
}

/** Words with their columns, as a compact string list `text@col`. */
const words = (line: string): string[] => tokenizeLine(line, 1, "t").map((t) => `${t.text}@${t.col}`);

describe("tokenizeLine (add_param_to_argv)", () => {
  it("splits on blanks, keeping columns", () => {
    expect(words("-A INPUT  -j\tACCEPT")).toEqual(["-A@1", "INPUT@4", "-j@11", "ACCEPT@14"]);
  });
  it("reads double quotes with backslash escapes, as iptables-restore 1.8.9 does", () => {
    // each case checked against iptables-nft-restore + iptables-save
    expect(words('--comment "a\\"b"')).toEqual(["--comment@1", 'a"b@11']);
    expect(words('--comment "a b"c')).toEqual(["--comment@1", "a b@11", "c@16"]); // the closing quote ends the word
    expect(words('--comment a"b c"')).toEqual(["--comment@1", "ab c@11"]);
    expect(words('--comment ""')).toEqual(["--comment@1", "@11"]);
    expect(words('--comment "a\\\\b"')).toEqual(["--comment@1", "a\\b@11"]);
    expect(words("--comment a\\b")).toEqual(["--comment@1", "a\\b@11"]); // outside quotes a backslash is a character
    expect(words("--comment \"it's\"")).toEqual(["--comment@1", "it's@11"]);
  });
  it("starts after a counter prefix", () => {
    expect(words("[1:2]-A X").length).toBe(2);
    expect(tokenizeLine("[1:2]-A X", 1, "t", 5).map((t) => t.text)).toEqual(["-A", "X"]);
  });
  it("refuses an unterminated quote (iptables would swallow the newline)", () => {
    expect(errorOf(() => tokenizeLine('-m comment --comment "open', 7, "f")).message).toBe(
      'f:7:22: unterminated quote (iptables-restore would take the rest of the line, newline included, as the word); close it with "',
    );
  });
});

describe("parseAddress (xtables_ipparse_multiple)", () => {
  const one = (t: string, family: 4 | 6 = 4) => {
    const [a] = parseAddress(t, family, P);
    return { words: a!.words, prefix: a!.prefix, mask: a!.mask };
  };
  it("reads CIDR, dotted masks (contiguous or not), and completes short IPv4 forms", () => {
    expect(one("10.1.2.3")).toEqual({ words: [0x0a010203, 0, 0, 0], prefix: 32, mask: [0xffffffff, 0, 0, 0] });
    expect(one("10.1.2.3/8")).toEqual({ words: [0x0a000000, 0, 0, 0], prefix: 8, mask: [0xff000000, 0, 0, 0] });
    expect(one("192.168.0.0/255.255.0.0")).toMatchObject({ prefix: 16 });
    expect(one("10.8.7.6/255.0.255.0")).toEqual({ words: [0x0a000700, 0, 0, 0], prefix: -1, mask: [0xff00ff00, 0, 0, 0] });
    expect(one("10/8")).toMatchObject({ words: [0x0a000000, 0, 0, 0] });
    expect(one("10.1/16")).toMatchObject({ words: [0x0a010000, 0, 0, 0] });
    expect(one("0x0a.010.0.1")).toMatchObject({ words: [0x0a080001, 0, 0, 0] }); // strtoul base 0, as libxtables
    expect(one("anything-at-all/0")).toEqual({ words: [0, 0, 0, 0], prefix: 0, mask: [0, 0, 0, 0] }); // a zero mask ignores the name
  });
  it("reads IPv6 in every inet_pton form, masks as lengths or addresses", () => {
    expect(one("2001:DB8::1", 6)).toEqual({ words: [0x20010db8, 0, 0, 1], prefix: 128, mask: [-1 >>> 0, -1 >>> 0, -1 >>> 0, -1 >>> 0] });
    expect(one("::ffff:192.0.2.1", 6)).toMatchObject({ words: [0, 0, 0xffff, 0xc0000201] });
    expect(one("fe80::/10", 6)).toMatchObject({ words: [0xfe800000, 0, 0, 0], prefix: 10 });
    expect(one("2001:db8::ff/ffff:ffff::ffff", 6)).toMatchObject({ prefix: -1, mask: [0xffffffff, 0, 0, 0xffff], words: [0x20010db8, 0, 0, 0xff] });
  });
  it("expands comma lists and /etc/hosts names (every address of the family, file order), with each item's column", () => {
    const list = parseAddress("10.0.0.1, backup.lan", 4, { file: "f", line: 3, col: 10 });
    expect(list.map((a) => [a.words[0].toString(16), a.text, a.pos.col])).toEqual([
      ["a000001", "10.0.0.1", 10],
      ["a000005", "backup.lan", 20],
      ["a000006", "backup.lan", 20],
    ]);
    expect(parseAddress("v6host.lan", 6, P).map((a) => a.words[3])).toEqual([1, 2]);
  });
  it("never resolves through DNS", () => {
    expect(errorOf(() => parseAddress("example.com", 4, P)).reason).toBe(
      "host/network `example.com` not found: not an IPv4 address, and /etc/hosts has no IPv4 address for it (sluice never asks DNS)",
    );
  });
  it("refuses bad masks and addresses of the other family", () => {
    expect(errorOf(() => parseAddress("10.0.0.0/33", 4, P)).reason).toBe("invalid mask `33` in `10.0.0.0/33` (a prefix length 0..32 or a dotted mask)");
    expect(errorOf(() => parseAddress("10.0.0.0/255.255.0", 4, P)).reason).toContain("invalid mask `255.255.0`");
    expect(errorOf(() => parseAddress("1.2.3.256", 4, P)).reason).toContain("host/network `1.2.3.256` not found");
    expect(errorOf(() => parseAddress("::1", 4, P)).reason).toContain("host/network `::1` not found");
    expect(errorOf(() => parseAddress("10.0.0.1", 6, P)).reason).toContain("host/network `10.0.0.1` not found");
    expect(errorOf(() => parseAddress("1::2::3", 6, P)).reason).toContain("not found");
  });
});

describe("fixtures", () => {
  for (const f of FIXTURES) {
    it(`${f.name} parses`, () => {
      const rs = parseRuleset(fixtureText(f.name), f.name, f.family);
      expect(rs.family).toBe(f.family);
      expect(rs.tables.length).toBeGreaterThan(0);
    });
  }

  it("home router (iptables-legacy-save): tables in file order, built-ins in Linux's order, counters, LOG prefix", () => {
    const rs = parseRuleset(fixtureText("home-router.v4"), "home-router.v4", 4);
    expect(rs.tables.map((t) => t.name)).toEqual(["filter", "nat", "mangle", "raw"]);
    expect(rs.tables[2]!.chains.map((c) => c.name)).toEqual(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);
    const input = chain(rs, "filter", "INPUT");
    expect([input.policy, input.packets, input.bytes]).toEqual(["DROP", 1290n, 88123n]);
    expect(input.rules).toHaveLength(7);
    expect([input.rules[1]!.packets, input.rules[1]!.bytes]).toEqual([182003n, 191722811n]);
    expect(stripPos(input.rules[4]!.matches)).toEqual([
      { name: "icmp", implicit: false, options: [{ name: "--icmp-type", written: "--icmp-type", negated: false, args: ["8"] }] },
      { name: "limit", implicit: false, options: [{ name: "--limit", written: "--limit", negated: false, args: ["2/sec"] }] },
    ]);
    const log = chain(rs, "filter", "LOGDROP").rules[0]!.target!;
    expect(stripPos(log)).toEqual({
      name: "LOG",
      kind: "jump",
      chain: false,
      options: [
        { name: "--log-prefix", written: "--log-prefix", negated: false, args: ["DROP: "] },
        { name: "--log-level", written: "--log-level", negated: false, args: ["6"] },
      ],
    });
    expect(chain(rs, "filter", "INPUT").rules[6]!.target).toMatchObject({ name: "LOGDROP", chain: true, kind: "jump" });
    expect(chain(rs, "nat", "POSTROUTING").rules[0]!.src).toMatchObject({ words: [0xc0a80100, 0, 0, 0], prefix: 24, text: "192.168.1.0/24" });
    expect(chain(rs, "raw", "PREROUTING").rules[0]!.target).toMatchObject({ name: "CT", options: [{ name: "--notrack", args: [] }] });
  });

  it("Docker host (iptables-nft-save): DOCKER chains, addrtype, negated interfaces, goto and RETURN", () => {
    const rs = parseRuleset(fixtureText("docker-host.v4"), "docker-host.v4", 4);
    expect(rs.tables.find((t) => t.name === "filter")!.chains.map((c) => c.name)).toEqual([
      "INPUT", "FORWARD", "OUTPUT", "DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER", "DOCKER-USER-LOG",
    ]);
    const pre = chain(rs, "nat", "PREROUTING").rules[0]!;
    expect(pre.matches[0]).toMatchObject({ name: "addrtype", options: [{ name: "--dst-type", args: ["LOCAL"] }] });
    const out = chain(rs, "nat", "OUTPUT").rules[0]!;
    expect(out.dst).toMatchObject({ negated: true, prefix: 8, words: [0x7f000000, 0, 0, 0] });
    const iso = chain(rs, "filter", "DOCKER-ISOLATION-STAGE-1").rules;
    expect(iso[0]).toMatchObject({
      inIface: { name: "docker0", negated: false, wildcard: false },
      outIface: { name: "docker0", negated: true },
      target: { name: "DOCKER-ISOLATION-STAGE-2", chain: true },
    });
    expect(iso[2]!.target).toMatchObject({ name: "RETURN", chain: false });
    const user = chain(rs, "filter", "DOCKER-USER").rules[0]!;
    expect(user.target).toMatchObject({ name: "DOCKER-USER-LOG", kind: "goto", chain: true });
    expect(user.src).toMatchObject({ negated: true, prefix: 16 });
    expect(chain(rs, "nat", "DOCKER").rules[2]!.target).toMatchObject({ name: "DNAT", options: [{ name: "--to-destination", args: ["172.17.0.2:80"] }] });
  });

  it("server: recent, hashlimit, multiport, REJECT, comments with spaces, negated --tcp-flags with two arguments", () => {
    const rs = parseRuleset(fixtureText("server.v4"), "server.v4", 4);
    const ssh = chain(rs, "filter", "SSH").rules;
    expect(ssh[0]!.matches[0]!.options[0]!.args).toEqual(["office: never rate limited"]);
    expect(ssh[1]!.target).toBeNull(); // `-m recent --set` only counts
    expect(ssh[2]!.matches[0]!.options.map((o) => o.name)).toEqual(["--update", "--seconds", "--hitcount", "--name", "--mask", "--rsource"]);
    const web = chain(rs, "filter", "WEB").rules;
    expect(web[0]!.matches[0]!.options[0]).toMatchObject({ name: "--tcp-flags", args: ["FIN,SYN,RST,ACK", "SYN"], negated: false });
    expect(web[0]!.matches[1]!.options[0]).toMatchObject({ name: "--hashlimit-upto", written: "--hashlimit-upto", args: ["50/sec"] });
    expect(web[1]!.matches[0]!.options[0]).toMatchObject({ name: "--tcp-flags", negated: true });
    const input = chain(rs, "filter", "INPUT").rules;
    expect(input[4]!.matches[0]).toMatchObject({ name: "multiport", options: [{ name: "--destination-ports", written: "--dports", args: ["80,443"] }] });
    expect(chain(rs, "filter", "REJECT-ALL").rules[1]!.target).toMatchObject({ name: "REJECT", options: [{ args: ["icmp-port-unreachable"] }] });
  });

  it("IPv6 host: ipv6-icmp, icmp6 types, frag, hl, IPv6 addresses", () => {
    const rs = parseRuleset(fixtureText("ipv6-host.v6"), "ipv6-host.v6", 6);
    const icmp = chain(rs, "filter", "ICMP6").rules;
    expect(icmp[4]).toMatchObject({ proto: { value: 58, text: "ipv6-icmp" }, matches: [{ name: "icmp6" }, { name: "hl", options: [{ name: "--hl-eq", args: ["255"] }] }] });
    expect(icmp[8]!.src).toMatchObject({ family: 6, words: [0xfe800000, 0, 0, 0], prefix: 10 });
    const input = chain(rs, "filter", "INPUT").rules;
    expect(input[4]!.matches[0]).toMatchObject({ name: "frag", options: [{ name: "--fragmore", args: [] }] });
    expect(input[5]!.dst).toMatchObject({ words: [0x20010db8, 0x00100000, 0, 1], prefix: 128 });
  });

  it("untidy IPv4: everything iptables-restore tolerates", () => {
    const rs = parseRuleset(fixtureText("untidy.v4"), "untidy.v4", 4);
    expect(rs.tables.map((t) => t.name)).toEqual(["nat", "filter"]);
    const input = chain(rs, "filter", "INPUT");
    expect(input.policy).toBe("DROP"); // declared after its first rule
    const r = input.rules;
    expect(r[0]!.src).toMatchObject({ words: [0x0a000001, 0, 0, 0], prefix: 32, text: "10.0.0.1" });
    expect(r[1]).toMatchObject({ pos: { line: 30 }, inIface: { name: "eth+", wildcard: true } }); // -I INPUT 2
    expect([r[2]!.packets, r[2]!.bytes]).toEqual([10n, 600n]);
    // [1:60] glued to -A; a match after the target; the tcp match loaded by -p
    expect(r[3]).toMatchObject({ packets: 1n, bytes: 60n, target: { name: "ACCEPT" }, matches: [{ name: "tcp", implicit: true, options: [{ written: "--dport", args: ["80"] }] }] });
    expect(r[4]!.matches[0]).toMatchObject({ name: "icmp", implicit: true, options: [{ args: ["echo-request"] }] });
    expect(r[5]!.matches[0]!.options.map((o) => o.written)).toEqual(["--destination-port", "--syn"]);
    expect(r[6]!.matches[0]!.options[0]).toMatchObject({ name: "--ctstate", negated: true });
    expect(r[8]).toMatchObject({ src: { prefix: 16, text: "192.168.0.0/255.255.0.0" }, dst: { words: [0x0a010000, 0, 0, 0], prefix: 16 } });
    expect(r[9]!.src).toMatchObject({ prefix: -1, mask: [0xff00ff00, 0, 0, 0], words: [0x0a000000, 0, 0, 0] });
    expect(r.slice(10, 12).map((x) => x.src!.words[0])).toEqual([0x0a000005, 0x0a000006]); // backup.lan, two addresses
    expect(r.slice(12, 16).map((x) => `${x.src!.words[0] & 255}>${x.dst!.words[0] & 255}`)).toEqual(["1>1", "1>2", "2>1", "2>2"]);
    expect(r.slice(10, 16).every((x) => x.pos.line === (x.src!.text === "backup.lan" ? 27 : 28))).toBe(true);
    expect(r[16]).toMatchObject({ proto: { value: 17, text: "17" }, matches: [{ name: "udp", implicit: true }] });
    expect(chain(rs, "filter", "FORWARD").rules[1]).toMatchObject({ packets: 5n, bytes: 300n });
    expect(chain(rs, "filter", "OUTPUT").rules[0]!.proto).toMatchObject({ value: 6, text: "TCP" });
    expect(chain(rs, "filter", "OUTPUT").rules[1]!.fragment).toMatchObject({ negated: false });
    expect(chain(rs, "filter", "TRUSTED").rules[0]!.matches[1]!.options[0]!.args).toEqual(['ssh from "trusted" nets']);
    expect(chain(rs, "filter", "ADMINS").rules[0]!.target).toBeNull();
  });

  it("untidy IPv6: -p icmp, ICMPv6 spellings, -4 lines ignored, -6 lines kept", () => {
    const rs = parseRuleset(fixtureText("untidy.v6"), "untidy.v6", 6);
    const r = chain(rs, "filter", "INPUT").rules;
    expect(r[0]!.proto).toMatchObject({ value: 1 });
    expect(r.slice(1, 4).map((x) => [x.proto!.value, x.matches[0]!.name, x.matches[0]!.implicit])).toEqual([
      [58, "icmp6", true],
      [58, "icmp6", false],
      [58, "icmp6", true],
    ]);
    expect(r[4]!.src).toMatchObject({ words: [0x20010db8, 0, 0, 0], prefix: 32, text: "2001:DB8::/32" });
    expect(r[6]!.src!.prefix).toBe(-1);
    expect(r.map((x) => x.pos.line)).toEqual([8, 9, 10, 11, 12, 12, 13, 14, 15, 15, 17]);
  });

  it("commands: -I -D -R -C -N -E -X -F -P -Z give what iptables-legacy-restore gives", () => {
    const rs = parseRuleset(fixtureText("commands.v4"), "commands.v4", 4);
    const t = rs.tables[0]!;
    expect(t.chains.map((c) => `${c.name}:${c.policy ?? "-"}:${c.packets}:${c.bytes}`)).toEqual([
      "INPUT:ACCEPT:0:0",
      "FORWARD:DROP:0:0", // -P without -c restarts the policy counters
      "OUTPUT:ACCEPT:10:20",
      "NEW:-:0:0", // OLD renamed in place
      "LATER:-:0:0",
    ]);
    const input = chain(rs, "filter", "INPUT").rules;
    expect(input.map((r) => [r.target!.name, r.target!.chain, r.packets])).toEqual([
      ["NEW", true, 1n], // the jump follows the rename; -Z leaves counters from the file alone, as libiptc does
      ["ACCEPT", false, 5n],
    ]);
    expect(chain(rs, "filter", "NEW").rules.map((r) => r.src?.text ?? r.target!.name)).toEqual(["192.168.0.0/16", "172.16.0.0/12", "LATER"]);
    expect(chain(rs, "filter", "FORWARD").rules).toEqual([]);
  });
});

describe("how a rule line is split (getopt_long over a growing option table)", () => {
  /** The first rule of a one-rule filter table. */
  const rule = (line: string, family: 4 | 6 = 4): RuleNode => filter(line, family).tables[0]!.chains.find((c) => c.rules.length > 0)!.rules[0]!;

  it("an option goes to the most recently loaded extension that declares it", () => {
    expect(rule("-A INPUT -m mark -m connmark --mark 1").matches.map((m) => m.options.length)).toEqual([0, 1]);
    expect(rule("-A INPUT -m connmark -m mark --mark 1").matches.map((m) => m.options.length)).toEqual([0, 1]);
    // a second `-m mark` is a clone: the table keeps connmark first, so connmark still wins
    expect(rule("-A INPUT -m mark -m connmark -m mark --mark 1").matches.map((m) => `${m.name}:${m.options.length}`)).toEqual(["mark:0", "connmark:1", "mark:0"]);
  });
  it("options of a repeated match go to its latest instance", () => {
    const r = rule("-A INPUT -p tcp -m tcp --dport 1 -m tcp --sport 2");
    expect(r.matches.map((m) => m.options.map((o) => o.written))).toEqual([["--dport"], ["--sport"]]);
  });
  it("the protocol's match is loaded once, when an option is unknown, wherever it appears", () => {
    const r = rule("-A INPUT -p 6 -j REJECT --reject-with tcp-reset --dport 22 --syn");
    expect(r.matches).toMatchObject([{ name: "tcp", implicit: true, options: [{ name: "--destination-port" }, { name: "--syn" }] }]);
    expect(r.target!.options).toMatchObject([{ name: "--reject-with" }]);
    expect(rule("-A INPUT ! -p tcp --dport 22").proto).toMatchObject({ value: 6, negated: true }); // iptables 1.8.9 accepts it
  });
  it("an abbreviation can reach another extension's option: `--sport` after `-m multiport` is its --sports (Linux agrees)", () => {
    const r = rule("-A INPUT -p tcp -m multiport --sport 1000:2000");
    expect(r.matches).toMatchObject([{ name: "multiport", options: [{ name: "--source-ports", written: "--sport" }] }]);
  });
  it("accepts unambiguous abbreviations and --opt=value, as getopt_long does", () => {
    const r = rule("-A INPUT --so 10.0.0.1 --proto tcp --dp 22 --sp=23 --jump ACCEPT");
    expect(r.src!.words[0]).toBe(0x0a000001);
    expect(r.matches[0]!.options.map((o) => `${o.name}=${o.args[0]}@${o.written}`)).toEqual(["--destination-port=22@--dp", "--source-port=23@--sp"]);
    expect(errorOf(() => rule("-A INPUT --s 10.0.0.1")).message).toBe(
      "t.rules:2:10: unknown option `--s` (an ambiguous abbreviation): no loaded match or target takes it",
    );
  });
  it("reads clustered short options; -p, -s, -d, -j, -g read an attached value as the whole word, as 1.8.9 does", () => {
    expect(rule("-A INPUT -fv -j DROP").fragment).toMatchObject({ negated: false });
    expect(rule("-A INPUT -ieth0").inIface).toMatchObject({ name: "eth0", pos: { col: 12 } });
    expect(errorOf(() => rule("-A INPUT -ptcp")).reason).toBe("unknown protocol `-ptcp` (a number 0..255, or a name from iptables' list or /etc/protocols)");
  });
  it("!, interfaces, protocols", () => {
    const r = rule("-A FORWARD ! -i ppp+ ! -o eth0 ! -p udp ! -f");
    expect(stripPos([r.inIface, r.outIface, r.proto, r.fragment])).toEqual([
      { name: "ppp+", wildcard: true, negated: true },
      { name: "eth0", wildcard: false, negated: true },
      { value: 17, negated: true, text: "udp" },
      { negated: true },
    ]);
    expect(rule("-A INPUT -p all").proto).toMatchObject({ value: 0 });
    expect(rule("-A INPUT -p gre").proto).toMatchObject({ value: 47 }); // from /etc/protocols
    expect(rule("-A INPUT -p ipv6-mh", 6).proto).toMatchObject({ value: 135 }); // iptables' own list
  });
  it("non-negatable options take `!` as their value (iptables 1.8.9: `--comment !` is a comment)", () => {
    expect(rule("-A INPUT -m comment --comment ! -j ACCEPT").matches[0]!.options[0]!.args).toEqual(["!"]);
  });
  it("an extension sluice does not implement is parsed (the compiler refuses it), with the reason in an option error", () => {
    expect(rule("-A INPUT -m set --match-set blocklist src -j DROP").matches[0]).toMatchObject({ name: "set", options: [{ args: ["blocklist", "src"] }] });
    expect(rule("-A INPUT -j NFQUEUE").target).toMatchObject({ name: "NFQUEUE", chain: false });
    expect(errorOf(() => rule("-A INPUT -m socket --transparent")).reason).toBe(
      "unknown option `--transparent`: no loaded match or target takes it; match socket: socket lookup (-m socket) needs the kernel's sockets; not available to a userspace gateway",
    );
  });
  it("a target extension wins over a user chain of the same name; -g reaches the chain", () => {
    const rs = filter(":LOG - [0:0]\n-A INPUT -j LOG\n-A INPUT -g LOG");
    expect(chain(rs, "filter", "INPUT").rules.map((r) => [r.target!.kind, r.target!.chain])).toEqual([
      ["jump", false],
      ["goto", true],
    ]);
  });
  it("-I with a comma list inserts each rule at the same index (reverse order, as iptables)", () => {
    const rs = filter("-A INPUT -j DROP\n-I INPUT 1 -s 10.0.0.1,10.0.0.2 -j ACCEPT\n-I INPUT 4 -j LOG");
    expect(chain(rs, "filter", "INPUT").rules.map((r) => r.src?.text ?? r.target!.name)).toEqual(["10.0.0.2", "10.0.0.1", "DROP", "LOG"]);
  });
  it("a table given twice: the second block replaces the first (restore flushes), in the first one's place", () => {
    const rs = parseRuleset("*filter\n-A INPUT -j DROP\nCOMMIT\n*nat\nCOMMIT\n*filter\n-A OUTPUT -j DROP\nCOMMIT\n", "t", 4);
    expect(rs.tables.map((t) => t.name)).toEqual(["filter", "nat"]);
    expect(chain(rs, "filter", "INPUT").rules).toEqual([]);
    expect(chain(rs, "filter", "OUTPUT").rules).toHaveLength(1);
  });
  it("empty files and comment-only files are empty rulesets", () => {
    expect(parseRuleset("", "t", 4).tables).toEqual([]);
    expect(parseRuleset("# nothing\n\n", "t", 6).tables).toEqual([]);
  });
});

describe("findLoops", () => {
  it("lists each cycle once", () => {
    const rs = filter(":A - [0:0]\n:B - [0:0]\n:C - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -g A\n-A B -j C\n-A C -j C");
    expect(findLoops(rs.tables[0]!)).toEqual([["A", "B"], ["C"]]);
    expect(findLoops(parseRuleset(fixtureText("docker-host.v4"), "d", 4).tables[0]!)).toEqual([]);
  });
});

/**
 * Every refusal: the file text, the exact `file:line:col: message`, and
 * what Linux does with it ("nft"/"legacy": that iptables-restore backend
 * refuses it too; "stricter": iptables accepts it and sluice refuses on
 * purpose, see parse.ts).
 */
interface ErrorCase {
  name: string;
  family?: 4 | 6;
  text: string;
  error: string;
  linux: "nft" | "legacy" | "stricter";
  /** Run the oracle with `iptables-restore -c` (counters are only read then). */
  restoreCounters?: boolean;
}

const ERRORS: ErrorCase[] = [
  {
    name: "unknown match",
    text: "*filter\n-A INPUT -m nosuch -j ACCEPT\nCOMMIT\n",
    error: "e:2:13: unknown match `nosuch`",
    linux: "nft",
  },
  {
    name: "match of the other family",
    family: 6,
    text: "*filter\n-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT\nCOMMIT\n",
    error: "e:2:21: match `icmp` does not exist for IPv6 (it is an IPv4 match)",
    linux: "nft",
  },
  {
    name: "unknown option of an IPv4 match in ip6tables (-p icmp loads nothing there)",
    family: 6,
    text: "*filter\n-A INPUT -p icmp --icmp-type 8 -j ACCEPT\nCOMMIT\n",
    error: "e:2:18: unknown option `--icmp-type`: no loaded match or target takes it",
    linux: "nft",
  },
  {
    name: "unknown target",
    text: "*filter\n-A INPUT -p tcp -j NOSUCH\nCOMMIT\n",
    error: "e:2:20: unknown target or chain `NOSUCH` in table filter",
    linux: "nft",
  },
  {
    name: "jump to a chain declared only later (reported at the -j line, not at COMMIT)",
    text: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-A INPUT -j LATER\n:LATER - [0:0]\nCOMMIT\n",
    error:
      "e:4:13: unknown target or chain `LATER` in table filter (chain `LATER` is declared only at line 5; iptables-restore needs chains declared before the rules that jump to them)",
    linux: "nft",
  },
  {
    name: "rule appended to an undeclared chain",
    text: "*filter\n-A NOCHAIN -j ACCEPT\nCOMMIT\n",
    error: "e:2:4: chain `NOCHAIN` does not exist in table filter",
    linux: "nft",
  },
  {
    name: "jump to a built-in chain",
    text: "*filter\n-A INPUT -j OUTPUT\nCOMMIT\n",
    error: "e:2:13: cannot jump to built-in chain OUTPUT (Linux refuses it)",
    linux: "nft",
  },
  {
    name: "goto a target",
    text: "*filter\n-A INPUT -g ACCEPT\nCOMMIT\n",
    error: "e:2:13: goto `ACCEPT` is not a chain",
    linux: "legacy",
  },
  {
    name: "bad address",
    text: "*filter\n-A INPUT -s 10.0.0.1,nosuchhost -j DROP\nCOMMIT\n",
    error: "e:2:22: host/network `nosuchhost` not found: not an IPv4 address, and /etc/hosts has no IPv4 address for it (sluice never asks DNS)",
    linux: "nft",
  },
  {
    name: "bad prefix",
    family: 6,
    text: "*filter\n-A INPUT -d 2001:db8::/129 -j DROP\nCOMMIT\n",
    error: "e:2:13: invalid mask `129` in `2001:db8::/129` (a prefix length 0..128 or a IPv6-form mask)",
    linux: "nft",
  },
  {
    name: "negation with several addresses",
    text: "*filter\n-A INPUT ! -s 10.0.0.1,10.0.0.2 -j DROP\nCOMMIT\n",
    error: "e:2:15: ! not allowed with multiple source or destination IP addresses",
    linux: "nft",
  },
  {
    name: "intrapositioned negation on a match option",
    text: "*filter\n-A INPUT -p tcp --dport ! 22 -j DROP\nCOMMIT\n",
    error:
      "e:2:25: negation after the option (`--dport ! 22`) is refused by iptables 1.8.9 (intrapositioned negation was removed); write `! --dport 22`",
    linux: "nft",
  },
  {
    name: "intrapositioned negation on -s",
    text: "*filter\n-A INPUT -s ! 10.0.0.1 -j DROP\nCOMMIT\n",
    error:
      "e:2:13: negation after the option (`-s ! 10.0.0.1`) is refused by iptables 1.8.9 (intrapositioned negation was removed); write `! -s 10.0.0.1`",
    linux: "nft",
  },
  {
    name: "missing COMMIT",
    text: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n",
    error: "e:4:1: COMMIT expected: table filter (opened at line 1) is never committed",
    linux: "nft",
  },
  {
    name: "CRLF line endings (at the first line where the CR matters)",
    text: "# saved on Windows\r\n*filter\r\n-A INPUT -j ACCEPT\r\nCOMMIT\r\n",
    error: "e:2:8: CRLF line ending: iptables-restore refuses it (the carriage return becomes part of the last word); convert the file to LF line endings",
    linux: "nft",
  },
  {
    name: "unknown table",
    text: "*security\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
    error: "e:1:2: unknown table `security` (sluice has raw, mangle, nat, filter)",
    linux: "stricter",
  },
  {
    name: "table name that Linux does not know either",
    text: "*filterr\nCOMMIT\n",
    error: "e:1:2: unknown table `filterr` (sluice has raw, mangle, nat, filter)",
    linux: "nft",
  },
  {
    name: "unknown option of a match",
    text: "*filter\n-A INPUT -p tcp -m tcp --dprot 22 -j ACCEPT\nCOMMIT\n",
    error: "e:2:24: unknown option `--dprot`: no loaded match or target takes it",
    linux: "nft",
  },
  {
    name: "target option before its -j",
    text: "*filter\n-A INPUT --log-prefix x -j LOG\nCOMMIT\n",
    error: "e:2:10: unknown option `--log-prefix`: no loaded match or target takes it",
    linux: "nft",
  },
  {
    name: "missing option argument",
    text: "*filter\n-A INPUT -p tcp --dport\nCOMMIT\n",
    error: "e:2:17: option `--dport` requires an argument",
    linux: "nft",
  },
  {
    name: "second argument of a two-argument option missing",
    text: "*filter\n-A INPUT -p tcp --tcp-flags SYN -j DROP\nCOMMIT\n",
    error: "e:2:17: --tcp-flags requires two args",
    linux: "nft",
  },
  {
    name: "an option given twice to one match (here: connmark, loaded last, takes both)",
    text: "*mangle\n-A PREROUTING -m mark -m connmark --mark 1 --mark 2\nCOMMIT\n",
    error: "e:2:44: connmark: option `--mark` can only be used once",
    linux: "nft",
  },
  {
    name: "option that cannot be inverted",
    text: "*filter\n-A INPUT -m conntrack ! --ctdir ORIGINAL -j DROP\nCOMMIT\n",
    error: "e:2:23: conntrack: option `--ctdir` cannot be inverted",
    linux: "nft",
  },
  {
    name: "duplicate chain",
    text: "*filter\n:X - [0:0]\n:Y - [0:0]\n:X - [0:0]\nCOMMIT\n",
    error: "e:4:2: duplicate chain `X` (already declared at line 2)",
    linux: "legacy",
  },
  {
    name: "policy on a user chain",
    text: "*filter\n:MINE ACCEPT [0:0]\nCOMMIT\n",
    error: "e:2:7: policy on user chain MINE: only built-in chains of filter (INPUT, FORWARD, OUTPUT) have one; write `-`",
    linux: "legacy",
  },
  {
    name: "bad policy",
    text: "*filter\n:INPUT RETURN [0:0]\nCOMMIT\n",
    error: "e:2:8: bad policy name `RETURN` for INPUT (ACCEPT or DROP)",
    linux: "nft",
  },
  {
    name: "bad chain counters",
    text: "*filter\n:INPUT DROP [12:x]\nCOMMIT\n",
    error: "e:2:13: bad counters `[12:x]` for chain INPUT (expected [packets:bytes], decimal, each below 2^64)",
    linux: "stricter",
  },
  {
    name: "bad rule counters",
    text: "*filter\n[1:18446744073709551616] -A INPUT -j DROP\nCOMMIT\n",
    error: "e:2:1: bad counters `[1:18446744073709551616]` (expected [packets:bytes], decimal, each below 2^64)",
    linux: "stricter",
  },
  {
    name: "counters twice",
    text: "*filter\n[1:2] -A INPUT -c 3 4 -j DROP\nCOMMIT\n",
    error: "e:2:16: multiple -c flags not allowed (the line already has `[packets:bytes]`)",
    linux: "nft",
    restoreCounters: true,
  },
  {
    name: "-I beyond the end",
    text: "*filter\n-A INPUT -j DROP\n-I INPUT 3 -j ACCEPT\nCOMMIT\n",
    error: "e:3:10: index of insertion too big: INPUT has 1 rule(s), so -I takes 1..2",
    linux: "nft",
  },
  {
    name: "-I 0",
    text: "*filter\n-I INPUT 0 -j ACCEPT\nCOMMIT\n",
    error: "e:2:10: invalid rule number `0`",
    linux: "nft",
  },
  {
    name: "chain name too long",
    text: "*filter\n:A23456789012345678901234567890 - [0:0]\nCOMMIT\n",
    error: "e:2:2: invalid chain name `A23456789012345678901234567890` (28 chars max)",
    linux: "nft",
  },
  {
    name: "-N with a chain name too long",
    text: "*filter\n-N A2345678901234567890123456789\nCOMMIT\n",
    error: "e:2:4: chain name `A2345678901234567890123456789` too long (must be under 29 chars)",
    linux: "nft",
  },
  {
    name: "-N with a target's name",
    text: "*filter\n-N LOG\nCOMMIT\n",
    error: "e:2:4: chain name `LOG` may not clash with target name",
    linux: "nft",
  },
  {
    name: "-f in IPv6",
    family: 6,
    text: "*filter\n-A INPUT -f -j DROP\nCOMMIT\n",
    error: "e:2:10: `-f` is not supported in IPv6, use -m frag instead",
    linux: "nft",
  },
  {
    name: "DROP in nat",
    text: "*nat\n-A PREROUTING -s 10.0.0.0/8 -j DROP\nCOMMIT\n",
    error: 'e:2:32: the "nat" table is not intended for filtering, the use of DROP is therefore inhibited',
    linux: "nft",
  },
  {
    name: "-o in INPUT",
    text: "*filter\n-A INPUT -o eth0 -j DROP\nCOMMIT\n",
    error: "e:2:10: can't use -o with INPUT: packets there have no output interface yet",
    linux: "nft",
  },
  {
    name: "-i in OUTPUT",
    text: "*filter\n-A OUTPUT -i eth0 -j DROP\nCOMMIT\n",
    error: "e:2:11: can't use -i with OUTPUT: locally generated packets have no input interface",
    linux: "nft",
  },
  {
    name: "interface name too long",
    text: "*filter\n-A FORWARD -i abcdefghijklmnop -j DROP\nCOMMIT\n",
    error: "e:2:15: interface name `abcdefghijklmnop` must be shorter than 16 bytes (IFNAMSIZ)",
    linux: "nft",
  },
  {
    name: "interface with a slash",
    text: "*filter\n-A FORWARD -i eth0/1 -j DROP\nCOMMIT\n",
    error: "e:2:15: interface name `eth0/1` contains `/` or a blank, which Linux never allows in a name",
    linux: "stricter",
  },
  {
    name: "unknown protocol",
    text: "*filter\n-A INPUT -p 256 -j DROP\nCOMMIT\n",
    error: "e:2:13: unknown protocol `256` (a number 0..255, or a name from iptables' list or /etc/protocols)",
    linux: "nft",
  },
  {
    name: "! -p all",
    text: "*filter\n-A INPUT ! -p all -j DROP\nCOMMIT\n",
    error: "e:2:15: rule would never match protocol (`! -p all`)",
    linux: "nft",
  },
  {
    name: "unterminated quote",
    text: '*filter\n-A INPUT -m comment --comment "open -j DROP\nCOMMIT\n',
    error: 'e:2:31: unterminated quote (iptables-restore would take the rest of the line, newline included, as the word); close it with "',
    linux: "stricter",
  },
  {
    name: "a rule outside a table",
    text: "-A INPUT -j DROP\n",
    error: "e:1:1: rule outside a table: no `*table` line before it",
    linux: "nft",
  },
  {
    name: "a table inside a table",
    text: "*filter\n-A INPUT -j DROP\n*nat\nCOMMIT\n",
    error: "e:3:1: `*nat` inside table filter (opened at line 1): COMMIT it first",
    linux: "nft",
  },
  {
    name: "trailing blanks after COMMIT",
    text: "*filter\nCOMMIT \n",
    error: "e:2:1: bad argument `COMMIT`: not an option, nor the value of one",
    linux: "nft",
  },
  {
    name: "a comment after a rule",
    text: "*filter\n-A INPUT -j DROP # no comments here\nCOMMIT\n",
    error: "e:2:18: bad argument `#`: not an option, nor the value of one",
    linux: "nft",
  },
  {
    name: "no command",
    text: "*filter\n-s 10.0.0.1 -j DROP\nCOMMIT\n",
    error: "e:2:1: no command specified (-A, -I, -N, ...)",
    linux: "nft",
  },
  {
    name: "two commands",
    text: "*filter\n-A INPUT -A OUTPUT\nCOMMIT\n",
    error: "e:2:10: cannot use -A with -A: one command per line",
    linux: "nft",
  },
  {
    name: "a dangling !",
    text: "*filter\n-A INPUT -j DROP !\nCOMMIT\n",
    error: "e:2:18: nothing appropriate following !",
    linux: "nft",
  },
  {
    name: "! before -m",
    text: "*filter\n-A INPUT ! -m tcp\nCOMMIT\n",
    error: "e:2:10: unexpected ! flag before --match",
    linux: "nft",
  },
  {
    name: "-t in a restore file",
    text: "*filter\n-A INPUT -t nat -j DROP\nCOMMIT\n",
    error: "e:2:10: the -t option cannot be used in a restore file: the table is the `*table` line's",
    linux: "nft",
  },
  {
    name: "a rule option with -N",
    text: "*filter\n-N X -s 10.0.0.1\nCOMMIT\n",
    error: "e:2:6: illegal option `-s` with -N",
    linux: "nft",
  },
  {
    name: "-X of a chain with rules",
    text: "*filter\n:X - [0:0]\n-A X -j DROP\n-X X\nCOMMIT\n",
    error: "e:4:4: cannot delete chain X: it is not empty (flush it first with -F)",
    linux: "legacy",
  },
  {
    name: "-X of a chain something jumps to",
    text: "*filter\n:X - [0:0]\n-A INPUT -j X\n-X X\nCOMMIT\n",
    error: "e:4:4: cannot delete chain X: a rule of INPUT (line 3) jumps to it",
    linux: "legacy",
  },
  {
    name: "-D of a rule that is not there",
    text: "*filter\n-A INPUT -s 10.0.0.1 -j DROP\n-D INPUT -s 10.0.0.2 -j DROP\nCOMMIT\n",
    error: "e:3:1: bad rule (does a matching rule exist in INPUT?)",
    linux: "legacy",
  },
  {
    name: "-E of a built-in chain",
    text: "*filter\n-E INPUT IN\nCOMMIT\n",
    error: "e:2:4: cannot rename built-in chain INPUT",
    linux: "legacy",
  },
  {
    name: "-P of a user chain",
    text: "*filter\n:X - [0:0]\n-P X DROP\nCOMMIT\n",
    error: "e:3:4: cannot set a policy on user chain X (only built-in chains have one)",
    linux: "legacy",
  },
  {
    name: "a byte-order mark",
    text: "\uFEFF*filter\nCOMMIT\n",
    error: "e:1:1: byte-order mark at the start of the file: iptables-restore refuses it (it reads bytes, not text); save the file without a BOM",
    linux: "nft",
  },
  {
    name: "more words than iptables-restore can hold",
    text: `*filter\n-A INPUT${" -v".repeat(250)}\nCOMMIT\n`,
    error: "e:2:757: more than 251 words on one line (iptables-restore's argument limit)",
    linux: "nft",
  },
  {
    name: "-L in a restore file",
    text: "*filter\n-L INPUT\nCOMMIT\n",
    error: "e:2:1: -L lists rules; it has no place in a ruleset file",
    linux: "stricter",
  },
];

describe("refusals: file:line:col and message", () => {
  for (const c of ERRORS) {
    it(c.name, () => {
      const e = errorOf(() => parseRuleset(c.text, "e", c.family ?? 4));
      expect(e.message).toBe(c.error);
      expect(e.code).toBe("ESLUICE_RULES");
      expect(`${e.file}:${e.line}:${e.col}: ${e.reason}`).toBe(c.error);
    });
  }
});

describe("fuzz: any text either parses or is refused with a RuleError; what parses saves and parses back the same", () => {
  // Words that make rule lines more often right than wrong, and some that break them.
  const WORDS = [
    "-A", "-I", "-D", "-N", "-X", "-F", "-P", "-E", "-R", "-Z", "-C", "INPUT", "OUTPUT", "FORWARD", "X", "Y", "1", "2",
    "-s", "-d", "10.0.0.1", "10.0.0.0/8", "10.1.2.3/255.0.255.0", "backup.lan", "a,b", "10.0.0.1,10.0.0.2", "-i", "-o", "eth0", "eth+",
    "-p", "tcp", "udp", "icmp", "6", "all", "-f", "!", "-m", "tcp", "udp", "conntrack", "comment", "mark", "connmark", "multiport",
    "--dport", "--sport", "--dp", "--syn", "--tcp-flags", "SYN,ACK", "SYN", "--ctstate", "NEW", "--comment", '"a b"', '"x\\"y"',
    "--mark", "0x1", "--dports", "80,443", "-j", "-g", "ACCEPT", "DROP", "RETURN", "LOG", "--log-prefix", "REJECT", "--reject-with",
    "-c", "3", "4", "--", "-4", "-6", "-v", "-t", "=", "--dport=22", "[1:2]", "#", '"', "-fv", "-ptcp",
  ];
  // Option groups that make valid rules in any order (target first, matches after it, ...).
  const GROUPS = [
    ["-s", "10.0.0.1"], ["-s", "10.0.0.0/8,backup.lan"], ["-d", "192.168.1.0/24"], ["-d", "10.1/16"], ["-i", "eth0"], ["-i", "eth+"],
    ["-o", "wg0"], ["-p", "tcp"], ["-p", "udp"], ["-p", "6"], ["-p", "icmp"], ["-p", "tcp", "-m", "tcp"], ["--dport", "22"], ["--sport", "1:2"],
    ["--syn"], ["--tcp-flags", "SYN,ACK", "SYN"], ["-m", "conntrack", "--ctstate", "NEW"], ["-m", "comment", "--comment", '"x y"'],
    ["-m", "mark", "-m", "connmark", "--mark", "1"], ["-p", "tcp", "-m", "multiport", "--dports", "1,2"], ["-m", "limit", "--limit", "1/s"],
    ["-j", "ACCEPT"], ["-j", "LOG"], ["-j", "X"], ["-g", "X"], ["--log-prefix", '"p: "'], ["-j", "REJECT"], ["-c", "1", "2"], ["!"], ["--dp", "80"],
  ];
  const grammarRule = fc
    .tuple(fc.constantFrom("-A INPUT", "-A X", "-I INPUT", "-I X 1", "-A FORWARD", "[5:6] -A INPUT", "-D INPUT 1"), fc.array(fc.constantFrom(...GROUPS), { maxLength: 6 }))
    .map(([head, groups]) => [head, ...groups.flat()].join(" "));
  const line = fc.oneof(
    { weight: 6, arbitrary: fc.array(fc.constantFrom(...WORDS), { minLength: 1, maxLength: 10 }).map((w) => w.join(" ")) },
    { weight: 6, arbitrary: grammarRule },
    { weight: 1, arbitrary: fc.constantFrom(":X - [0:0]", ":Y -", ":INPUT DROP [1:2]", ":INPUT ACCEPT", "COMMIT", "*filter", "*nat", "# c", "") },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  );
  const file = fc.array(line, { maxLength: 12 }).map((ls) => `*filter\n:X - [0:0]\n${ls.join("\n")}\nCOMMIT\n`);

  it("never throws anything but RuleError, and round-trips what it accepts", () => {
    let accepted = 0;
    fc.assert(
      fc.property(file, fc.constantFrom(4 as const, 6 as const), (text, family) => {
        let rs: RulesetNode;
        try {
          rs = parseRuleset(text, "fuzz", family);
        } catch (e) {
          if (!(e instanceof RuleError)) throw e;
          expect(e.line).toBeGreaterThan(0);
          expect(e.col).toBeGreaterThan(0);
          return;
        }
        accepted++;
        const again = parseRuleset(formatRuleset(rs, { counters: true }), "fuzz (saved)", family);
        expect(stripSpelling(again)).toEqual(stripSpelling({ ...rs, file: again.file }));
      }),
      { numRuns: 3000, seed: 20251202 },
    );
    expect(accepted).toBeGreaterThan(300); // the generator reaches the accepting paths too
  }, 60_000);
});

// ---------------------------------------------------------------------------
// Linux as the oracle
// ---------------------------------------------------------------------------

describe.skipIf(!ORACLE)("Linux oracle (root, iptables 1.8.9, network namespaces)", () => {
  for (const f of FIXTURES) {
    it(`${f.name}: iptables-${f.backend}-restore keeps the rules sluice parsed`, () => {
      const text = fixtureText(f.name);
      const linux = linuxRestore(text, f.family, f.backend, f.counters);
      expect(linux.stderr.replace(/^# Warning.*\n/gm, "")).toBe("");
      expect(linux.status).toBe(0);
      const ours = parseRuleset(text, f.name, f.family);
      const theirs = parseRuleset(linux.saved, `${f.name} (iptables-save)`, f.family);
      // iptables-save prints every table it has; sluice's AST has those of the file
      const names = new Set(ours.tables.map((t) => t.name));
      theirs.tables = theirs.tables.filter((t) => names.has(t.name));
      ours.tables.sort((a, b) => (a.name < b.name ? -1 : 1));
      theirs.tables.sort((a, b) => (a.name < b.name ? -1 : 1));
      expect(shape(theirs, f.counters)).toEqual(shape(ours, f.counters));
    }, 30_000);
  }

  for (const c of ERRORS.filter((x) => x.linux !== "stricter")) {
    it(`Linux refuses too: ${c.name}`, () => {
      const r = linuxRestore(c.text, c.family ?? 4, c.linux === "stricter" ? "nft" : c.linux, c.restoreCounters === true);
      expect(r.status, r.stderr).not.toBe(0);
    }, 30_000);
  }

  for (const c of ERRORS.filter((x) => x.linux === "stricter")) {
    it(`sluice is stricter than iptables-restore: ${c.name}`, () => {
      const r = linuxRestore(c.text, c.family ?? 4, "nft", false);
      expect(r.status, r.stderr).toBe(0);
    }, 30_000);
  }
});
