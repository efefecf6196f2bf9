/**
 * The iptables extensions sluice knows: every match and target, its options
 * (with how many arguments each takes and whether `!` may precede it), the
 * families, tables and hooks Linux allows it in, and whether sluice
 * implements it yet. Data only: the parser reads it to split a rule line the
 * way iptables' getopt does; the compiler reads it to refuse what Linux
 * refuses (a target in the wrong table, a match in the wrong hook) and what
 * sluice does not implement, always with a message that names the thing.
 *
 * Names, option spellings, aliases and hook restrictions follow the Linux
 * x_tables modules (net/netfilter/xt_*.c, ipt_*.c, ip6t_*.c) and iptables'
 * libxt_*.c option tables, version 1.8.9.
 */

/** Netfilter hooks as bits (1 << NF_INET_*). */
export const HOOK_BIT = {
  PREROUTING: 1 << 0,
  INPUT: 1 << 1,
  FORWARD: 1 << 2,
  OUTPUT: 1 << 3,
  POSTROUTING: 1 << 4,
} as const;
export const ALL_HOOKS = 0x1f;

/** The tables sluice evaluates, in Linux's priority order per hook. */
export const TABLES = ["raw", "mangle", "nat", "filter"] as const;
export type TableName = (typeof TABLES)[number];

/** Built-in chains of each table and the hook each one runs at (Linux's valid_hooks). */
export const BUILTIN_CHAINS: Readonly<Record<TableName, Readonly<Record<string, number>>>> = {
  raw: { PREROUTING: HOOK_BIT.PREROUTING, OUTPUT: HOOK_BIT.OUTPUT },
  mangle: {
    PREROUTING: HOOK_BIT.PREROUTING,
    INPUT: HOOK_BIT.INPUT,
    FORWARD: HOOK_BIT.FORWARD,
    OUTPUT: HOOK_BIT.OUTPUT,
    POSTROUTING: HOOK_BIT.POSTROUTING,
  },
  nat: { PREROUTING: HOOK_BIT.PREROUTING, INPUT: HOOK_BIT.INPUT, OUTPUT: HOOK_BIT.OUTPUT, POSTROUTING: HOOK_BIT.POSTROUTING },
  filter: { INPUT: HOOK_BIT.INPUT, FORWARD: HOOK_BIT.FORWARD, OUTPUT: HOOK_BIT.OUTPUT },
};

/** One option of an extension. */
export interface OptionSpec {
  /** Arguments after the option: 0 (a flag), 1, or 2 (`--tcp-flags MASK COMP`). */
  args: 0 | 1 | 2;
  /** `!` may precede it (`! --dport 22`) or its argument (`--dport ! 22`, old style). */
  negatable: boolean;
  /** Other spellings of the same option (`--sport` for `--source-port`). */
  aliases?: readonly string[];
}

/** What sluice does with an extension. */
export type Support =
  | { state: "yes" }
  /** Parsed; refused at load with this reason (e.g. NAT until the NAT issue). */
  | { state: "later"; reason: string }
  /** Known to iptables but not to sluice: refused with this reason. */
  | { state: "no"; reason: string };

/** A match (`-m NAME`) or target (`-j NAME`). */
export interface ExtensionSpec {
  /** Its name as iptables spells it (`conntrack`, `REJECT`). */
  name: string;
  /** 4, 6, or both (0). */
  family: 0 | 4 | 6;
  /** Table it is restricted to (Linux's `.table`), if any. */
  table?: TableName;
  /** Hooks it may run at (Linux's `.hooks`), ALL_HOOKS when unrestricted. */
  hooks: number;
  /** Options by their main spelling. */
  options: Readonly<Record<string, OptionSpec>>;
  support: Support;
}

const YES: Support = { state: "yes" };
const NAT_LATER: Support = { state: "later", reason: "NAT targets are parsed but not implemented yet (they come with the NAT issue)" };

const flag = (negatable = false, aliases?: string[]): OptionSpec => ({ args: 0, negatable, aliases });
const one = (negatable = false, aliases?: string[]): OptionSpec => ({ args: 1, negatable, aliases });

const H = HOOK_BIT;

function ext(name: string, options: Record<string, OptionSpec>, more: Partial<Omit<ExtensionSpec, "name" | "options">> = {}): ExtensionSpec {
  return { name, family: 0, hooks: ALL_HOOKS, support: YES, ...more, options };
}

const portOptions = {
  "--source-port": one(true, ["--sport"]),
  "--destination-port": one(true, ["--dport"]),
};

/** Matches, by name. */
export const MATCHES: Readonly<Record<string, ExtensionSpec>> = Object.fromEntries(
  [
    ext("tcp", {
      ...portOptions,
      "--tcp-flags": { args: 2, negatable: true },
      "--syn": flag(true),
      "--tcp-option": one(true),
    }),
    ext("udp", { ...portOptions }),
    ext("sctp", { ...portOptions, "--chunk-types": { args: 2, negatable: true } }),
    ext("icmp", { "--icmp-type": one(true) }, { family: 4 }),
    ext("icmp6", { "--icmpv6-type": one(true) }, { family: 6 }),
    ext("conntrack", {
      "--ctstate": one(true),
      "--ctstatus": one(true),
      "--ctproto": one(true),
      "--ctorigsrc": one(true),
      "--ctorigdst": one(true),
      "--ctreplsrc": one(true),
      "--ctrepldst": one(true),
      "--ctorigsrcport": one(true),
      "--ctorigdstport": one(true),
      "--ctreplsrcport": one(true),
      "--ctrepldstport": one(true),
      "--ctdir": one(false),
      "--ctexpire": one(true),
    }),
    ext("state", { "--state": one(true) }),
    ext("multiport", {
      "--source-ports": one(true, ["--sports"]),
      "--destination-ports": one(true, ["--dports"]),
      "--ports": one(true),
    }),
    ext("iprange", { "--src-range": one(true), "--dst-range": one(true) }),
    ext("mark", { "--mark": one(true) }),
    ext("connmark", { "--mark": one(true) }),
    ext("limit", { "--limit": one(false), "--limit-burst": one(false) }),
    ext("hashlimit", {
      "--hashlimit-upto": one(false, ["--hashlimit"]),
      "--hashlimit-above": one(false),
      "--hashlimit-burst": one(false),
      "--hashlimit-mode": one(false),
      "--hashlimit-srcmask": one(false),
      "--hashlimit-dstmask": one(false),
      "--hashlimit-name": one(false),
      "--hashlimit-htable-size": one(false),
      "--hashlimit-htable-max": one(false),
      "--hashlimit-htable-expire": one(false),
      "--hashlimit-htable-gcinterval": one(false),
      "--hashlimit-rate-match": flag(false),
      "--hashlimit-rate-interval": one(false),
    }),
    ext("recent", {
      "--set": flag(true),
      "--rcheck": flag(true),
      "--update": flag(true),
      "--remove": flag(true),
      "--seconds": one(false),
      "--reap": flag(false),
      "--hitcount": one(false),
      "--rttl": flag(false),
      "--name": one(false),
      "--mask": one(false),
      "--rsource": flag(false),
      "--rdest": flag(false),
    }),
    ext("statistic", { "--mode": one(false), "--probability": one(true), "--every": one(true), "--packet": one(false) }),
    ext("string", {
      "--algo": one(false),
      "--from": one(false),
      "--to": one(false),
      "--string": one(true),
      "--hex-string": one(true),
      "--icase": flag(false),
    }),
    ext("length", { "--length": one(true) }),
    ext("ttl", { "--ttl-eq": one(true), "--ttl-lt": one(false), "--ttl-gt": one(false) }, { family: 4 }),
    ext("hl", { "--hl-eq": one(true), "--hl-lt": one(false), "--hl-gt": one(false) }, { family: 6 }),
    ext("pkttype", { "--pkt-type": one(true) }),
    ext("mac", { "--mac-source": one(true) }, { hooks: H.PREROUTING | H.INPUT | H.FORWARD }),
    ext(
      "owner",
      { "--uid-owner": one(true), "--gid-owner": one(true), "--socket-exists": flag(true), "--suppl-groups": flag(false) },
      { hooks: H.OUTPUT | H.POSTROUTING },
    ),
    ext(
      "frag",
      {
        "--fragid": one(true),
        "--fraglen": one(true),
        "--fragres": flag(false),
        "--fragfirst": flag(false),
        "--fragmore": flag(false),
        "--fraglast": flag(false),
      },
      { family: 6 },
    ),
    ext("comment", { "--comment": one(false) }),
    ext("addrtype", { "--src-type": one(true), "--dst-type": one(true), "--limit-iface-in": flag(false), "--limit-iface-out": flag(false) }),
    ext("set", { "--match-set": { args: 2, negatable: true } }, { support: { state: "no", reason: "ipset is not supported by sluice" } }),
    ext("socket", {}, { support: { state: "no", reason: "socket lookup (-m socket) needs the kernel's sockets; not available to a userspace gateway" } }),
    ext("physdev", {}, { support: { state: "no", reason: "bridge ports (-m physdev) are not supported" } }),
    ext("policy", {}, { support: { state: "no", reason: "IPsec policy (-m policy) is not supported" } }),
    ext("helper", { "--helper": one(true) }, { support: { state: "later", reason: "-m helper comes with the FTP helper issue" } }),
    ext("connlimit", {}, { support: { state: "no", reason: "-m connlimit is not supported yet" } }),
    ext("geoip", {}, { support: { state: "no", reason: "-m geoip is not supported" } }),
    ext("u32", {}, { support: { state: "no", reason: "-m u32 is not supported" } }),
    ext("bpf", {}, { support: { state: "no", reason: "-m bpf is not supported" } }),
  ].map((e) => [e.name, e]),
);

/** `-m icmpv6` is the same match as icmp6 (ip6tables accepts both, as `-p` does). */
export const MATCH_ALIASES: Readonly<Record<string, string>> = { icmpv6: "icmp6", "ipv6-icmp": "icmp6" };

/** Targets, by name. ACCEPT, DROP, RETURN are verdicts (no options); a user chain is a jump. */
export const TARGETS: Readonly<Record<string, ExtensionSpec>> = Object.fromEntries(
  [
    ext("ACCEPT", {}),
    ext("DROP", {}),
    ext("RETURN", {}),
    ext("REJECT", { "--reject-with": one(false) }, { hooks: H.INPUT | H.FORWARD | H.OUTPUT }),
    ext("LOG", {
      "--log-level": one(false),
      "--log-prefix": one(false),
      "--log-tcp-sequence": flag(false),
      "--log-tcp-options": flag(false),
      "--log-ip-options": flag(false),
      "--log-uid": flag(false),
      "--log-macdecode": flag(false),
    }),
    ext("NFLOG", {
      "--nflog-group": one(false),
      "--nflog-prefix": one(false),
      "--nflog-range": one(false),
      "--nflog-size": one(false),
      "--nflog-threshold": one(false),
    }),
    ext(
      "CT",
      {
        "--notrack": flag(false),
        "--helper": one(false),
        "--ctevents": one(false),
        "--expevents": one(false),
        "--zone": one(false),
        "--zone-orig": one(false),
        "--zone-reply": one(false),
        "--timeout": one(false),
      },
      { table: "raw" },
    ),
    ext("NOTRACK", {}, { table: "raw" }),
    ext("MARK", {
      "--set-mark": one(false),
      "--set-xmark": one(false),
      "--and-mark": one(false),
      "--or-mark": one(false),
      "--xor-mark": one(false),
    }),
    ext("CONNMARK", {
      "--set-mark": one(false),
      "--set-xmark": one(false),
      "--save-mark": flag(false),
      "--restore-mark": flag(false),
      "--and-mark": one(false),
      "--or-mark": one(false),
      "--xor-mark": one(false),
      "--mask": one(false),
      "--ctmask": one(false),
      "--nfmask": one(false),
    }),
    ext("TCPMSS", { "--set-mss": one(false), "--clamp-mss-to-pmtu": flag(false) }, { hooks: H.FORWARD | H.OUTPUT | H.POSTROUTING }),
    ext("CHECKSUM", { "--checksum-fill": flag(false) }, { table: "mangle" }),
    ext(
      "SNAT",
      { "--to-source": one(false), "--random": flag(false), "--random-fully": flag(false), "--persistent": flag(false) },
      { table: "nat", hooks: H.POSTROUTING | H.INPUT, support: NAT_LATER },
    ),
    ext(
      "DNAT",
      { "--to-destination": one(false), "--random": flag(false), "--persistent": flag(false) },
      { table: "nat", hooks: H.PREROUTING | H.OUTPUT, support: NAT_LATER },
    ),
    ext(
      "MASQUERADE",
      { "--to-ports": one(false), "--random": flag(false), "--random-fully": flag(false) },
      { table: "nat", hooks: H.POSTROUTING, support: NAT_LATER },
    ),
    ext("REDIRECT", { "--to-ports": one(false), "--random": flag(false) }, { table: "nat", hooks: H.PREROUTING | H.OUTPUT, support: NAT_LATER }),
    ext("NFQUEUE", {}, { support: { state: "no", reason: "NFQUEUE inside sluice's own ruleset is not supported (sluice is the queue listener)" } }),
    ext("QUEUE", {}, { support: { state: "no", reason: "QUEUE inside sluice's own ruleset is not supported" } }),
    ext("TPROXY", {}, { support: { state: "no", reason: "TPROXY needs the kernel's socket lookup; not available to a userspace gateway" } }),
    ext("TEE", {}, { support: { state: "no", reason: "TEE is not supported" } }),
    ext("TRACE", {}, { support: { state: "no", reason: "use `sluice trace` instead of -j TRACE" } }),
    ext("SET", {}, { support: { state: "no", reason: "ipset is not supported by sluice" } }),
    ext("DSCP", {}, { support: { state: "no", reason: "DSCP is not supported yet" } }),
    ext("TOS", {}, { support: { state: "no", reason: "TOS is not supported yet" } }),
    ext("TTL", {}, { support: { state: "no", reason: "TTL is not supported yet" } }),
    ext("HL", {}, { support: { state: "no", reason: "HL is not supported yet" } }),
    ext("CLASSIFY", {}, { support: { state: "no", reason: "CLASSIFY (tc classes) is not supported" } }),
    ext("AUDIT", {}, { support: { state: "no", reason: "AUDIT is not supported" } }),
    ext("SECMARK", {}, { support: { state: "no", reason: "SECMARK is not supported" } }),
    ext("CONNSECMARK", {}, { support: { state: "no", reason: "CONNSECMARK is not supported" } }),
  ].map((e) => [e.name, e]),
);

/** Looks an option up in an extension by any of its spellings; returns the main spelling. */
export function findOption(e: ExtensionSpec, name: string): string | undefined {
  if (e.options[name] !== undefined) return name;
  for (const [main, o] of Object.entries(e.options)) if (o.aliases?.includes(name)) return main;
  return undefined;
}
