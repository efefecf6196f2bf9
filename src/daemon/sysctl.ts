/**
 * The sysctls sluice's plumbing needs (DESIGN.md, "Kernel facts"), and reading
 * and writing them through a command runner (so the same code works inside
 * `ip netns exec NS` and in the daemon's own namespace).
 *
 * Keys use `/` separators, which sysctl(8) accepts: interface names may
 * contain dots (eth0.100), which the dotted form cannot express.
 *
 * - forwarding (net/ipv4/ip_forward, net/ipv6/conf/all/forwarding) = 1: a
 *   gateway forwards. In TUN mode the kernel forwards into the TUN device.
 * - net/ipv4/conf/IFACE/rp_filter = 2 (loose) on every ingress interface:
 *   sluice rewrites sources at PREROUTING (NAT) before the kernel routes.
 *   2 rather than 0 because the kernel uses max(conf/all, conf/IFACE)
 *   (`IN_DEV_RPFILTER`), so 0 on the interface would not undo a strict
 *   conf/all/rp_filter = 1, while 2 wins either way and still drops sources
 *   with no route at all.
 * - net/ipv4/conf/IFACE/accept_local = 1: a rewritten source may be one of
 *   the gateway's own addresses (`fib_validate_source` rejects it otherwise).
 *   The kernel ORs conf/all with the interface's value, so the interface's is enough.
 * With no interface list, both go on conf/all, which covers every interface
 * (also ones created later): max() and OR make conf/all the floor.
 * IPv6 has neither knob (its reverse-path check is the ip6tables rpfilter
 * match, which sluice does not install).
 */

/** Runs one command (argv) and returns its stdout; throws on failure. */
export type Exec = (argv: readonly string[]) => string;

/** One sysctl and the value sluice wants. */
export interface SysctlWant {
  key: string;
  value: string;
}

/** Which families and interfaces the gateway serves. */
export interface SysctlNeeds {
  v4: boolean;
  v6: boolean;
  /** Interfaces packets arrive on (LAN and WAN); empty: all of them (conf/all). */
  interfaces: readonly string[];
}

/** The sysctls sluice sets, in the order it sets them. */
export function wantedSysctls(needs: SysctlNeeds): SysctlWant[] {
  const out: SysctlWant[] = [];
  if (needs.v4) out.push({ key: "net/ipv4/ip_forward", value: "1" });
  if (needs.v6) out.push({ key: "net/ipv6/conf/all/forwarding", value: "1" });
  if (needs.v4) {
    for (const iface of needs.interfaces.length > 0 ? needs.interfaces : ["all"]) {
      out.push({ key: `net/ipv4/conf/${iface}/rp_filter`, value: "2" });
      out.push({ key: `net/ipv4/conf/${iface}/accept_local`, value: "1" });
    }
  }
  return out;
}

/** The dotted name for logs (`net.ipv4.conf.eth0/100.rp_filter`, as sysctl(8) prints dots inside a component). */
export function sysctlDisplayName(key: string): string {
  return key
    .split("/")
    .map((part) => part.replace(/\./g, "/"))
    .join(".");
}

/** Reads a sysctl's current value (trimmed). */
export function readSysctl(exec: Exec, key: string): string {
  return exec(["sysctl", "-n", key]).trim();
}

/** Sets a sysctl. */
export function writeSysctl(exec: Exec, key: string, value: string): void {
  exec(["sysctl", "-q", "-w", `${key}=${value}`]);
}
