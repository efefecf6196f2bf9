/**
 * Names a ruleset may use instead of numbers, resolved the way iptables
 * resolves them, from local files only (never DNS: a gateway must not
 * depend on a resolver to load its firewall):
 *
 * - host names in -s/-d and address options: /etc/hosts (every address of
 *   the family; iptables adds one rule per address, as for comma lists);
 * - protocol names for -p: iptables' built-in table (xtables_chain_protos:
 *   tcp, udp, udplite, icmp, icmpv6/ipv6-icmp, esp, ah, sctp, mh, all),
 *   then /etc/protocols;
 * - service names for ports: /etc/services (per protocol).
 *
 * The files are read once and cached; tests point `setNameFiles` at fixtures.
 * Configuration time only: nothing here runs per packet.
 */
import { readFileSync } from "node:fs";

interface NameFiles {
  hosts: string;
  protocols: string;
  services: string;
}

let files: NameFiles = { hosts: "/etc/hosts", protocols: "/etc/protocols", services: "/etc/services" };
let hostsCache: Map<string, string[]> | null = null;
let protocolsCache: Map<string, number> | null = null;
let servicesCache: Map<string, number> | null = null;

/** Points the resolvers at other files (tests) and drops the caches. */
export function setNameFiles(f: Partial<NameFiles>): void {
  files = { ...files, ...f };
  hostsCache = protocolsCache = servicesCache = null;
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, "utf8").split("\n");
  } catch {
    return []; // a missing file resolves nothing; the caller reports the name as unknown
  }
}

/** Fields of a line without its comment. */
function fields(line: string): string[] {
  const hash = line.indexOf("#");
  return (hash >= 0 ? line.slice(0, hash) : line).trim().split(/\s+/).filter((f) => f !== "");
}

/** The addresses /etc/hosts gives `name`, of the family (4: dotted quads, 6: the rest), in file order. */
export function lookupHost(name: string, family: 4 | 6): string[] {
  if (hostsCache === null) {
    hostsCache = new Map();
    for (const line of readLines(files.hosts)) {
      const f = fields(line);
      if (f.length < 2) continue;
      for (const n of f.slice(1)) {
        const key = n.toLowerCase();
        const list = hostsCache.get(key) ?? [];
        if (!list.includes(f[0]!)) list.push(f[0]!);
        hostsCache.set(key, list);
      }
    }
  }
  const all = hostsCache.get(name.toLowerCase()) ?? [];
  return all.filter((a) => (family === 4 ? /^\d+\.\d+\.\d+\.\d+$/.test(a) : a.includes(":")));
}

/** iptables' own protocol names (libxtables xtables_chain_protos), checked before /etc/protocols. */
const BUILTIN_PROTOS: Readonly<Record<string, number>> = {
  tcp: 6,
  sctp: 132,
  udp: 17,
  udplite: 136,
  icmp: 1,
  icmpv6: 58,
  "ipv6-icmp": 58,
  esp: 50,
  ah: 51,
  "ipv6-mh": 135,
  mh: 135,
  all: 0,
};

/** Protocol number of a name (case-insensitive, as iptables lower-cases it), or undefined. */
export function lookupProtocol(name: string): number | undefined {
  const key = name.toLowerCase();
  const b = BUILTIN_PROTOS[key];
  if (b !== undefined) return b;
  if (protocolsCache === null) {
    protocolsCache = new Map();
    for (const line of readLines(files.protocols)) {
      const f = fields(line);
      if (f.length < 2 || !/^\d+$/.test(f[1]!)) continue;
      const n = Number(f[1]);
      for (const alias of [f[0]!, ...f.slice(2)]) if (!protocolsCache.has(alias.toLowerCase())) protocolsCache.set(alias.toLowerCase(), n);
    }
  }
  return protocolsCache.get(key);
}

/** The name iptables-save prints for a protocol number (its built-in names, else the number). */
export function protocolName(n: number, family: 4 | 6): string {
  switch (n) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return family === 6 ? "ipv6-icmp" : "ipv6-icmp";
    case 132: return "sctp";
    case 136: return "udplite";
    case 50: return "esp";
    case 51: return "ah";
    case 135: return "mh";
    default: return String(n);
  }
}

/** Port of a service name for a protocol (`tcp`, `udp`, `sctp`, ...), or undefined. */
export function lookupService(name: string, proto: string): number | undefined {
  if (servicesCache === null) {
    servicesCache = new Map();
    for (const line of readLines(files.services)) {
      const f = fields(line);
      const m = f.length >= 2 ? /^(\d+)\/(\w+)$/.exec(f[1]!) : null;
      if (m === null) continue;
      for (const n of [f[0]!, ...f.slice(2)]) {
        const key = `${n}/${m[2]}`;
        if (!servicesCache.has(key)) servicesCache.set(key, Number(m[1]));
      }
    }
  }
  return servicesCache.get(`${name}/${proto}`);
}
