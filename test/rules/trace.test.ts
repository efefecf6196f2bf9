/**
 * `replay --trace`: the path of each packet through tables and chains, the
 * rule that decided, the ctstate each table saw, the verdict; filtered in
 * iptables match syntax. Real parser, compiler, pipeline; packets from the
 * test builders, written to a pcap and replayed through the CLI's replay().
 */
import { describe, expect, it } from "vitest";
import { buildHints, replay } from "../../src/cli/replay.js";
import { PcapReader } from "../../src/io/pcap.js";
import { ipv4Tcp, ipv4Udp, toPcap } from "../helpers/packets.js";

const RULES = `*filter
:FORWARD DROP [0:0]
:CHECK - [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j CHECK
-A CHECK -p tcp --dport 22 -j REJECT --reject-with tcp-reset
-A CHECK -p udp -j LOG --log-prefix "udp: "
-A CHECK -j ACCEPT
COMMIT
`;

const pkts = [
  ipv4Tcp({ src: "10.0.1.2", dst: "203.0.113.2", sport: 40000, dport: 22, seq: 1, flags: "S" }),
  ipv4Udp({ src: "10.0.1.2", dst: "203.0.113.2", sport: 5000, dport: 53, payload: new Uint8Array(4) }),
  ipv4Udp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 53, dport: 5000, payload: new Uint8Array(4) }),
  ipv4Tcp({ src: "203.0.113.2", dst: "10.0.1.2", sport: 5555, dport: 80, seq: 1, flags: "S" }),
];

function run(trace: string): string {
  let out = "";
  replay(PcapReader.open(toPcap(pkts), "t.pcap"), {
    json: false, list: false, events: false, quiet: false, sysctl: [],
    rules4: { file: "t.rules", text: RULES },
    ifaces: ["lan0=10.0.1.1/24", "wan0=203.0.113.1/24"], routes: [], trace,
  }, (s) => { out += s; });
  return out;
}

describe("replay --trace", () => {
  it("shows each table's ctstate and matched rules, the deciding rule in full, and the verdict", () => {
    const out = run("");
    expect(out).toBe(
      "#0  tcp 10.0.1.2:40000 → 203.0.113.2:22 [S]  in lan0 → out wan0   DROP by filter CHECK#1\n" +
      "    filter FORWARD     NEW         FORWARD#2 -j CHECK › CHECK#1 -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset\n" +
      "#1  udp 10.0.1.2:5000 → 203.0.113.2:53  in lan0 → out wan0   ACCEPT\n" +
      "    filter FORWARD     NEW         FORWARD#2 -j CHECK › CHECK#2 -j LOG › CHECK#3 -j ACCEPT\n" +
      "#2  udp 203.0.113.2:53 → 10.0.1.2:5000  in wan0 → out lan0   ACCEPT\n" +
      "    filter FORWARD     ESTABLISHED FORWARD#1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n" +
      "#3  tcp 203.0.113.2:5555 → 10.0.1.2:80 [S]  in wan0 → out lan0   DROP by filter FORWARD policy\n" +
      "    filter FORWARD     NEW         policy DROP\n",
    );
  });

  it("a filter in iptables match syntax picks the packets", () => {
    const out = run("-p udp -i wan0");
    expect(out.split("\n").filter((l) => l.startsWith("#"))).toEqual(["#2  udp 203.0.113.2:53 → 10.0.1.2:5000  in wan0 → out lan0   ACCEPT"]);
  });

  it("a bad filter is refused with its column", () => {
    expect(() => run("-p tcp --dportt 22")).toThrow(/^\(trace filter\):2:/);
  });

  it("interface hints: a bad one names the option", () => {
    expect(() => buildHints(["lan0"], [])).toThrow(/--iface lan0: expected NAME=ADDR\/LEN/);
    expect(() => buildHints(["lan0=10.0.1.1/24"], ["default=wan0"])).toThrow(/no --iface wan0/);
  });
});
