/**
 * ICMP and ICMPv6 type names as iptables 1.8.9 knows them
 * (`icmp_codes` / `icmpv6_codes` in extensions/libxt_icmp.h): each name is
 * a type and a code range. The order is iptables' (it decides which names
 * an abbreviation is ambiguous between). Configuration time only.
 */
import type { OptionNode } from "../ast.js";
import { fail, strtoulPartial } from "./parse.js";

/** One name: [name, type, code min, code max]. */
type IcmpName = readonly [string, number, number, number];

/** libxt_icmp.h `icmp_codes`. */
// prettier-ignore
export const ICMP_NAMES: readonly IcmpName[] = [
  ["any", 0xff, 0, 0xff],
  ["echo-reply", 0, 0, 0xff],
  ["pong", 0, 0, 0xff],
  ["destination-unreachable", 3, 0, 0xff],
  ["network-unreachable", 3, 0, 0],
  ["host-unreachable", 3, 1, 1],
  ["protocol-unreachable", 3, 2, 2],
  ["port-unreachable", 3, 3, 3],
  ["fragmentation-needed", 3, 4, 4],
  ["source-route-failed", 3, 5, 5],
  ["network-unknown", 3, 6, 6],
  ["host-unknown", 3, 7, 7],
  ["network-prohibited", 3, 9, 9],
  ["host-prohibited", 3, 10, 10],
  ["TOS-network-unreachable", 3, 11, 11],
  ["TOS-host-unreachable", 3, 12, 12],
  ["communication-prohibited", 3, 13, 13],
  ["host-precedence-violation", 3, 14, 14],
  ["precedence-cutoff", 3, 15, 15],
  ["source-quench", 4, 0, 0xff],
  ["redirect", 5, 0, 0xff],
  ["network-redirect", 5, 0, 0],
  ["host-redirect", 5, 1, 1],
  ["TOS-network-redirect", 5, 2, 2],
  ["TOS-host-redirect", 5, 3, 3],
  ["echo-request", 8, 0, 0xff],
  ["ping", 8, 0, 0xff],
  ["router-advertisement", 9, 0, 0xff],
  ["router-solicitation", 10, 0, 0xff],
  ["time-exceeded", 11, 0, 0xff],
  ["ttl-exceeded", 11, 0, 0xff],
  ["ttl-zero-during-transit", 11, 0, 0],
  ["ttl-zero-during-reassembly", 11, 1, 1],
  ["parameter-problem", 12, 0, 0xff],
  ["ip-header-bad", 12, 0, 0],
  ["required-option-missing", 12, 1, 1],
  ["timestamp-request", 13, 0, 0xff],
  ["timestamp-reply", 14, 0, 0xff],
  ["address-mask-request", 17, 0, 0xff],
  ["address-mask-reply", 18, 0, 0xff],
];

/** libxt_icmp.h `icmpv6_codes`. */
// prettier-ignore
export const ICMPV6_NAMES: readonly IcmpName[] = [
  ["destination-unreachable", 1, 0, 0xff],
  ["no-route", 1, 0, 0],
  ["communication-prohibited", 1, 1, 1],
  ["beyond-scope", 1, 2, 2],
  ["address-unreachable", 1, 3, 3],
  ["port-unreachable", 1, 4, 4],
  ["failed-policy", 1, 5, 5],
  ["reject-route", 1, 6, 6],
  ["packet-too-big", 2, 0, 0xff],
  ["time-exceeded", 3, 0, 0xff],
  ["ttl-exceeded", 3, 0, 0xff],
  ["ttl-zero-during-transit", 3, 0, 0],
  ["ttl-zero-during-reassembly", 3, 1, 1],
  ["parameter-problem", 4, 0, 0xff],
  ["bad-header", 4, 0, 0],
  ["unknown-header-type", 4, 1, 1],
  ["unknown-option", 4, 2, 2],
  ["echo-request", 128, 0, 0xff],
  ["ping", 128, 0, 0xff],
  ["echo-reply", 129, 0, 0xff],
  ["pong", 129, 0, 0xff],
  ["router-solicitation", 133, 0, 0xff],
  ["router-advertisement", 134, 0, 0xff],
  ["neighbour-solicitation", 135, 0, 0xff],
  ["neighbor-solicitation", 135, 0, 0xff],
  ["neighbour-advertisement", 136, 0, 0xff],
  ["neighbor-advertisement", 136, 0, 0xff],
  ["redirect", 137, 0, 0xff],
];

/**
 * Parses an `--icmp-type` / `--icmpv6-type` argument like iptables: a name
 * or any unambiguous case-insensitive abbreviation of one, else
 * `type[/code]` (0..255 each). Returns [type, code min, code max].
 */
export function parseIcmpType(at: OptionNode, text: string, v6: boolean): [number, number, number] {
  const table = v6 ? ICMPV6_NAMES : ICMP_NAMES;
  const what = v6 ? "ICMPv6" : "ICMP";
  const lower = text.toLowerCase();
  let found: IcmpName | undefined;
  for (const n of table) {
    if (text === "" || !n[0].toLowerCase().startsWith(lower)) continue;
    // Aliases (pong/echo-reply) name the same entry: not ambiguous between themselves.
    if (found !== undefined && !(found[1] === n[1] && found[2] === n[2] && found[3] === n[3])) {
      fail(at, `Ambiguous ${what} type \`${text}': \`${found[0]}' or \`${n[0]}'?`);
    }
    found ??= n;
  }
  if (found !== undefined) return [found[1], found[2], found[3]];
  const t = strtoulPartial(text, 0, 255);
  if (t === null) return fail(at, `Unknown ${what} type \`${text}'`);
  if (t.end === text.length) return [t.value, 0, 0xff];
  if (text[t.end] !== "/") return fail(at, `Unknown ${what} type \`${text}'`);
  const rest = text.slice(t.end + 1);
  const c = strtoulPartial(rest, 0, 255);
  if (c === null) return fail(at, `Unknown ${what} code \`${text}'`);
  if (c.end !== rest.length) return fail(at, `unknown character ${rest[c.end]}`);
  return [t.value, c.value, c.value];
}
