#!/usr/bin/env python3
"""What does an NFQUEUE listener receive for fragmented IPv4/IPv6 datagrams?

sluice queues packets with

    iptables  -t raw -A PREROUTING -j CT --notrack
    iptables  -t raw -A PREROUTING -j NFQUEUE --queue-num N   (same for OUTPUT, ip6tables)

and reassembles fragments itself (src/packet/defrag.ts) if the kernel hands
them over one by one. This script measures what the kernel really hands over,
in several rule sets, on the running kernel:

  client ──veth── gateway ──veth── server
  10.91.1.2       .1 | 10.91.2.1   10.91.2.2     (2001:db8:91:1::/64, 2001:db8:91:2::/64)

The client sends one 4000-byte UDP datagram over IPv4 and one over IPv6 (the
client's stack fragments them); a listener in the gateway namespace speaks
nfnetlink_queue directly (AF_NETLINK, NETLINK_NETFILTER: config BIND +
COPY_PACKET, NFQNL_MSG_PACKET in, NF_ACCEPT verdicts out) and records each
packet; the server records what arrives on its wire (AF_PACKET) and in its
UDP socket. Each configuration gets fresh namespaces (conntrack and defrag
are enabled per namespace, by reference count), named fragx-<pid>-<n>-{c,g,s}.

Python 3 standard library only; needs root, iproute2 and iptables (nft or
legacy; both are tried when present). Every wait is bounded; namespaces and
child processes are removed on exit, error or signal.

Usage: sudo python3 scripts/experiments/nfqueue-fragments.py [--json FILE]
"""

import argparse
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

QUEUE = 7
PORT = 9999
SIZE = 4000

# nfnetlink / nfnetlink_queue (include/uapi/linux/netfilter/nfnetlink*.h)
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_IFINDEX_INDEV = 5
NFQA_IFINDEX_OUTDEV = 6
NFQA_PAYLOAD = 10
NFQA_SKB_INFO = 14
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NF_DROP = 0
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
HOOKS = {0: "PREROUTING", 1: "INPUT", 2: "FORWARD", 3: "OUTPUT", 4: "POSTROUTING"}


# ---------------------------------------------------------------- packet parsing

def describe_ip(b):
    """A small dict for an L3 packet: family, length, fragment fields, upper protocol, UDP port."""
    if len(b) < 1:
        return {"family": 0, "len": len(b)}
    v = b[0] >> 4
    if v == 4 and len(b) >= 20:
        ihl = (b[0] & 15) * 4
        fo = struct.unpack("!H", b[6:8])[0]
        d = {
            "family": 4, "len": len(b), "totlen": struct.unpack("!H", b[2:4])[0],
            "id": struct.unpack("!H", b[4:6])[0], "df": bool(fo & 0x4000), "mf": bool(fo & 0x2000),
            "offset": (fo & 0x1FFF) * 8, "proto": b[9],
            "src": socket.inet_ntop(socket.AF_INET, b[12:16]), "dst": socket.inet_ntop(socket.AF_INET, b[16:20]),
        }
        if d["proto"] == 17 and d["offset"] == 0 and len(b) >= ihl + 4:
            d["dport"] = struct.unpack("!H", b[ihl + 2:ihl + 4])[0]
        if d["proto"] == 1 and d["offset"] == 0 and len(b) >= ihl + 8:
            d["icmp"] = [b[ihl], b[ihl + 1], struct.unpack("!H", b[ihl + 6:ihl + 8])[0]]  # type, code, next-hop MTU
        return d
    if v == 6 and len(b) >= 40:
        d = {
            "family": 6, "len": len(b), "plen": struct.unpack("!H", b[4:6])[0], "nexthdr": b[6],
            "src": socket.inet_ntop(socket.AF_INET6, b[8:24]), "dst": socket.inet_ntop(socket.AF_INET6, b[24:40]),
            "frag": None,
        }
        nh, p = b[6], 40
        while nh in (0, 43, 60, 51, 44) and p + 8 <= len(b):
            if nh == 44:
                fo = struct.unpack("!H", b[p + 2:p + 4])[0]
                d["frag"] = {"offset": fo & 0xFFF8, "m": bool(fo & 1), "id": struct.unpack("!I", b[p + 4:p + 8])[0]}
                nh = b[p]
                p += 8
                if fo & 0xFFF8:
                    break
                continue
            hlen = (b[p + 1] + 2) * 4 if nh == 51 else (b[p + 1] + 1) * 8
            nh, p = b[p], p + hlen
        d["upper"] = nh
        if nh == 17 and (d["frag"] is None or d["frag"]["offset"] == 0) and len(b) >= p + 4:
            d["dport"] = struct.unpack("!H", b[p + 2:p + 4])[0]
        if nh == 58 and len(b) >= p + 8:
            d["icmp"] = [b[p], b[p + 1], struct.unpack("!I", b[p + 4:p + 8])[0]]  # type, code, MTU for Packet Too Big
        return d
    return {"family": v, "len": len(b)}


def is_icmp_error(d):
    """ICMP "fragmentation needed" (3/4) or ICMPv6 "packet too big" (2)."""
    i = d.get("icmp")
    return bool(i) and ((d["family"] == 4 and i[0] == 3 and i[1] == 4) or (d["family"] == 6 and i[0] == 2))


def is_test_packet(d):
    """The experiment's datagrams: UDP to PORT, or any fragment (whose port we cannot see)."""
    if is_icmp_error(d):
        return False
    if d.get("family") == 4:
        return d.get("proto") == 17 and (d.get("dport") == PORT or d["mf"] or d["offset"] > 0)
    if d.get("family") == 6:
        return d.get("frag") is not None or (d.get("upper") == 17 and d.get("dport") == PORT)
    return False


def short(d):
    """One-token summary of a packet dict."""
    if is_icmp_error(d):
        return f"{'icmp-frag-needed' if d['family'] == 4 else 'icmp6-packet-too-big'}(mtu={d['icmp'][2]})"
    if d["family"] == 4:
        if d["mf"] or d["offset"]:
            return f"frag(len={d['len']},off={d['offset']},MF={int(d['mf'])})"
        return f"whole(len={d['len']}{',DF' if d['df'] else ''})"
    if d["family"] == 6:
        f = d["frag"]
        if f and (f["offset"] or f["m"]):
            return f"frag(len={d['len']},off={f['offset']},M={int(f['m'])})"
        return f"whole(len={d['len']}{',atomic-FH' if f else ''})"
    return f"?(len={d['len']})"


def pattern(n):
    return bytes(i % 251 for i in range(n))


# ---------------------------------------------------------------- child modes

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def nla(t, data):
    n = 4 + len(data)
    return struct.pack("=HH", n, t) + data + b"\0" * ((4 - n % 4) % 4)


def nfq_msg(msg, flags, seq, family, res_id, attrs):
    body = struct.pack("!BBH", family, 0, res_id) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, NLM_F_REQUEST | flags, seq, 0) + body


def parse_attrs(buf):
    attrs, p = {}, 0
    while p + 4 <= len(buf):
        n, t = struct.unpack("=HH", buf[p:p + 4])
        if n < 4:
            break
        attrs[t & 0x3FFF] = buf[p + 4:p + n]
        p += (n + 3) & ~3
    return attrs


def frag_key(b):
    """(key, offset, end, last, data start) of a fragment, or None for a whole packet."""
    d = describe_ip(b)
    if d.get("family") == 4 and (d["mf"] or d["offset"]):
        ihl = (b[0] & 15) * 4
        return (4, d["src"], d["dst"], d["id"], d["proto"]), d["offset"], d["offset"] + d["totlen"] - ihl, not d["mf"], ihl
    if d.get("family") == 6 and d["frag"] and (d["frag"]["offset"] or d["frag"]["m"]):
        nh, p = b[6], 40
        while nh != 44:
            nh, p = b[p], p + ((b[p + 1] + 2) * 4 if nh == 51 else (b[p + 1] + 1) * 8)
        f = d["frag"]
        return (6, d["src"], d["dst"], f["id"]), f["offset"], f["offset"] + 40 + d["plen"] - p - 8, not f["m"], p + 8
    return None


def reassemble(frags):
    """The datagram of a complete fragment list [(offset, payload bytes, data start)], as Linux builds it."""
    frags = sorted(frags)
    first = frags[0][1]
    data = b"".join(pl[start:] for _off, pl, start in frags)
    if first[0] >> 4 == 4:
        ihl = (first[0] & 15) * 4
        h = bytearray(first[:ihl])
        struct.pack_into("!HH", h, 2, ihl + len(data), 0)
        h[6:8] = b"\0\0"
        h[10:12] = b"\0\0"
        c = sum(struct.unpack(f"!{ihl // 2}H", bytes(h)))
        while c >> 16:
            c = (c & 0xFFFF) + (c >> 16)
        struct.pack_into("!H", h, 10, ~c & 0xFFFF)
        return bytes(h) + data
    nh, prev, p = first[6], 6, 40
    while nh != 44:
        prev, nh, p = p, first[p], p + ((first[p + 1] + 2) * 4 if nh == 51 else (first[p + 1] + 1) * 8)
    h = bytearray(first[:p])
    h[prev] = first[p]
    struct.pack_into("!H", h, 4, p - 40 + len(data))
    return bytes(h) + data


def mode_listen(qnum, duration, mode):
    """nfnetlink_queue listener: bind `qnum`, copy packets, record them, answer each one.

    mode accept: NF_ACCEPT at once; mangle: NF_ACCEPT with the same bytes as a
    new payload (the nfqnl_mangle path); defer: hold the verdicts of a
    datagram's fragments until all are in, then accept each; reasm: when all
    are in, accept the first fragment with the reassembled datagram as its
    payload and drop the others.
    """
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    seq = 1
    for attrs in ([nla(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0))],
                  [nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET))]):
        s.send(nfq_msg(NFQNL_MSG_CONFIG, NLM_F_ACK, seq, socket.AF_UNSPEC, qnum, attrs))
        s.settimeout(2)
        reply = s.recv(65536)
        ln, typ = struct.unpack("=IH", reply[:6])
        if typ == NLMSG_ERROR:
            err = struct.unpack("=i", reply[16:20])[0]
            if err != 0:
                emit({"error": f"config failed: {os.strerror(-err)}"})
                return 1
        seq += 1
    emit({"ready": True})
    held = {}
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    deadline = time.monotonic() + duration
    s.settimeout(0.2)
    while not stop[0] and time.monotonic() < deadline:
        try:
            data = s.recv(262144)
        except socket.timeout:
            continue
        except OSError as e:  # ENOBUFS: say so and go on
            emit({"error": str(e)})
            continue
        p = 0
        while p + 16 <= len(data):
            ln, typ, _fl, _sq, _pid = struct.unpack("=IHHII", data[p:p + 16])
            if ln < 16:
                break
            if typ == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET):
                a = parse_attrs(data[p + 20:p + ln])
                pid, hwproto, hook = struct.unpack("!IHB", a[NFQA_PACKET_HDR][:7])
                payload = a.get(NFQA_PAYLOAD, b"")
                d = describe_ip(payload)
                d["hook"] = HOOKS.get(hook, hook)
                d["skb_info"] = struct.unpack("!I", a[NFQA_SKB_INFO])[0] if NFQA_SKB_INFO in a else 0
                if is_test_packet(d):
                    emit({"pkt": d})
                fk = frag_key(payload) if mode in ("defer", "reasm") else None
                if fk is None:
                    verdict(s, qnum, pid, NF_ACCEPT, payload if mode == "mangle" else None)
                else:
                    key, off, end, last, start = fk
                    q = held.setdefault(key, {"frags": [], "len": None})
                    q["frags"].append((off, payload, start, pid))
                    if last:
                        q["len"] = end
                    if q["len"] is not None and sum(len(p_) - st for _o, p_, st, _i in q["frags"]) == q["len"]:
                        del held[key]
                        fr = sorted(q["frags"])
                        if mode == "defer":
                            for _o, _p, _s, i in fr:
                                verdict(s, qnum, i, NF_ACCEPT, None)
                            emit({"verdict": f"deferred accept of {len(fr)} fragments"})
                        else:
                            whole = reassemble([(o, p_, st) for o, p_, st, _i in fr])
                            verdict(s, qnum, fr[0][3], NF_ACCEPT, whole)
                            for _o, _p, _s, i in fr[1:]:
                                verdict(s, qnum, i, NF_DROP, None)
                            emit({"verdict": f"first fragment accepted as the {len(whole)}-byte datagram, {len(fr) - 1} dropped"})
            p += (ln + 3) & ~3
    emit({"done": True})
    return 0


def verdict(s, qnum, pid, v, payload):
    attrs = [nla(NFQA_VERDICT_HDR, struct.pack("!II", v, pid))]
    if payload is not None:
        attrs.append(nla(NFQA_PAYLOAD, payload))
    s.send(nfq_msg(NFQNL_MSG_VERDICT, 0, 0, socket.AF_UNSPEC, qnum, attrs))


def mode_capture(iface, duration):
    """AF_PACKET capture of incoming IPv4/IPv6 test packets on `iface`."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.2)
    emit({"ready": True})
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    deadline = time.monotonic() + duration
    while not stop[0] and time.monotonic() < deadline:
        try:
            frame, addr = s.recvfrom(70000)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING or len(frame) < 14:
            continue
        et = struct.unpack("!H", frame[12:14])[0]
        if et not in (0x0800, 0x86DD):
            continue
        d = describe_ip(frame[14:])
        if is_test_packet(d) or is_icmp_error(d):
            emit({"pkt": d})
    emit({"done": True})
    return 0


def mode_udp_recv(duration, expect):
    """UDP sockets on PORT (IPv4 and IPv6); records each datagram's length and whether it is intact."""
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.bind(("0.0.0.0", PORT))
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s6.bind(("::", PORT))
    emit({"ready": True})
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    deadline = time.monotonic() + duration
    got = 0
    while not stop[0] and got < expect and time.monotonic() < deadline:
        r, _, _ = select.select([s4, s6], [], [], 0.2)
        for s in r:
            data, _ = s.recvfrom(70000)
            got += 1
            emit({"udp": {"family": 4 if s is s4 else 6, "len": len(data), "intact": data == pattern(len(data))}})
    emit({"done": True})
    return 0


def mode_udp_send(family, dst, size):
    s = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(pattern(size), (dst, PORT))
    return 0


# ---------------------------------------------------------------- orchestration

CHILDREN = []
NAMESPACES = []


def sh(*args, check=True, timeout=10):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def nsx(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def start_child(ns, *args):
    """Starts this script in `ns` in a child mode; waits (bounded) for its READY line."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    CHILDREN.append(p)
    r, _, _ = select.select([p.stdout], [], [], 5)
    line = p.stdout.readline() if r else ""
    if '"ready"' not in line:
        p.kill()
        err = p.stderr.read() if p.poll() is not None else ""
        raise RuntimeError(f"child {args[0]} in {ns} not ready: {line.strip()} {err.strip()}")
    return p


def finish_child(p, grace=5):
    """Asks a child to stop (SIGTERM), waits (bounded), returns its JSON lines."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=5)
    if p in CHILDREN:
        CHILDREN.remove(p)
    res = []
    for line in out.splitlines():
        try:
            res.append(json.loads(line))
        except ValueError:
            pass
    return res


def cleanup():
    for p in list(CHILDREN):
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        CHILDREN.remove(p)
    for ns in list(NAMESPACES):
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        NAMESPACES.remove(ns)


def make_topology(n, client_mtu):
    c, g, s = (f"fragx-{os.getpid()}-{n}-{x}" for x in "cgs")
    for ns in (c, g, s):
        sh("ip", "netns", "add", ns)
        NAMESPACES.append(ns)
        nsx(ns, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "g0", "netns", g)
    sh("ip", "link", "add", "g1", "netns", g, "type", "veth", "peer", "name", "s0", "netns", s)
    for ns, dev, mtu, a4, a6 in ((c, "c0", client_mtu, "10.91.1.2/24", "2001:db8:91:1::2/64"),
                                 (g, "g0", client_mtu, "10.91.1.1/24", "2001:db8:91:1::1/64"),
                                 (g, "g1", 1500, "10.91.2.1/24", "2001:db8:91:2::1/64"),
                                 (s, "s0", 1500, "10.91.2.2/24", "2001:db8:91:2::2/64")):
        nsx(ns, "ip", "link", "set", dev, "mtu", str(mtu), "up")
        nsx(ns, "ip", "addr", "add", a4, "dev", dev)
        nsx(ns, "ip", "-6", "addr", "add", a6, "dev", dev, "nodad")
    nsx(c, "ip", "route", "add", "default", "via", "10.91.1.1")
    nsx(c, "ip", "-6", "route", "add", "default", "via", "2001:db8:91:1::1")
    nsx(s, "ip", "route", "add", "default", "via", "10.91.2.1")
    nsx(s, "ip", "-6", "route", "add", "default", "via", "2001:db8:91:2::1")
    nsx(g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    nsx(g, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    # Resolve neighbours before any rule can queue them (no listener yet = drop).
    for ns, dst in ((c, "10.91.2.2"), (c, "2001:db8:91:2::2"), (g, "10.91.2.2"), (g, "2001:db8:91:2::2")):
        nsx(ns, "ping", "-c", "1", "-W", "2", dst, check=False)
    return c, g, s


# A rule whose only effect is to make the namespace use conntrack (it drops nothing here).
CT_USER = ("filter", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")

CONFIGS = [
    # name, rules (table, chain, target...), sender, client MTU, listener mode (see mode_listen)
    ("raw PREROUTING: CT --notrack, NFQUEUE (sluice's plan)",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "accept"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; verdict returns the payload (mangle path)",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "mangle"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; fragment verdicts held until the datagram is complete",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "defer"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; first fragment's verdict carries the reassembled datagram, rest dropped",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "reasm"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; client link MTU 1280, server link 1500",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1280, "accept"),
    ("raw PREROUTING: NFQUEUE only (nothing uses conntrack)",
     [("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "accept"),
    ("filter FORWARD: NFQUEUE only (nothing uses conntrack)",
     [("filter", "FORWARD", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "accept"),
    ("filter FORWARD: NFQUEUE, with raw PREROUTING CT --notrack",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("filter", "FORWARD", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "accept"),
    # Anything that calls nf_ct_netns_get() (a conntrack match, NAT, CT without
    # --notrack, nft "ct" expressions) registers nf_defrag at -400 for the netns.
    ("raw PREROUTING: CT --notrack, NFQUEUE; + a conntrack user (filter FORWARD -m conntrack)",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE)),
      CT_USER],
     "client", 1500, "accept"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; + a conntrack user; verdict returns the payload",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE)),
      CT_USER],
     "client", 1500, "mangle"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; + a conntrack user; client link MTU 1280, server link 1500",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE)),
      CT_USER],
     "client", 1280, "accept"),
    ("raw PREROUTING: CT --notrack, NFQUEUE; + a conntrack user; client MTU 1280, verdict returns the payload",
     [("raw", "PREROUTING", "-j", "CT", "--notrack"), ("raw", "PREROUTING", "-j", "NFQUEUE", "--queue-num", str(QUEUE)),
      CT_USER],
     "client", 1280, "mangle"),
    ("filter FORWARD: NFQUEUE; + a conntrack user",
     [CT_USER, ("filter", "FORWARD", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "client", 1500, "accept"),
    ("raw OUTPUT: CT --notrack, NFQUEUE; the gateway itself sends",
     [("raw", "OUTPUT", "-j", "CT", "--notrack"), ("raw", "OUTPUT", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "gateway", 1500, "accept"),
    ("raw OUTPUT: NFQUEUE only; the gateway itself sends",
     [("raw", "OUTPUT", "-j", "NFQUEUE", "--queue-num", str(QUEUE))],
     "gateway", 1500, "accept"),
]


def run_config(n, cfg, v4cmd, v6cmd):
    name, rules, sender, cmtu, mode = cfg
    c, g, s = make_topology(n, cmtu)
    try:
        for table, chain, *target in rules:
            nsx(g, v4cmd, "-t", table, "-A", chain, *target)
            nsx(g, v6cmd, "-t", table, "-A", chain, *target)
        listener = start_child(g, "--listen", str(QUEUE), "15", mode)
        capture = start_child(s, "--capture", "s0", "15")
        ccapture = start_child(c, "--capture", "c0", "15")
        recv = start_child(s, "--udp-recv", "10", "2")
        src_ns = c if sender == "client" else g
        nsx(src_ns, sys.executable, os.path.abspath(__file__), "--udp-send", "4", "10.91.2.2", str(SIZE))
        nsx(src_ns, sys.executable, os.path.abspath(__file__), "--udp-send", "6", "2001:db8:91:2::2", str(SIZE))
        got = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and recv.poll() is None:
            time.sleep(0.1)
        time.sleep(0.3)
        got = [x["udp"] for x in finish_child(recv) if "udp" in x]
        lout = finish_child(listener)
        seen = [x["pkt"] for x in lout if "pkt" in x]
        notes = [x["verdict"] for x in lout if "verdict" in x] + [x["error"] for x in lout if "error" in x]
        wire = [x["pkt"] for x in finish_child(capture) if "pkt" in x]
        back = [x["pkt"] for x in finish_child(ccapture) if "pkt" in x and is_icmp_error(x["pkt"])]
        return {"config": name, "iptables": v4cmd, "listener": seen, "server_wire": wire, "server_udp": got,
                "client_icmp_errors": back, "listener_notes": notes, "errors": []}
    finally:
        cleanup()


def summarize(r):
    lines = [f"- {r['config']}  [{r['iptables']}]"]
    for fam in (4, 6):
        seen = [p for p in r["listener"] if p["family"] == fam]
        wire = [p for p in r["server_wire"] if p["family"] == fam]
        udp = [u for u in r["server_udp"] if u["family"] == fam]
        back = [p for p in r.get("client_icmp_errors", []) if p["family"] == fam]
        hooks = sorted({p["hook"] for p in seen})
        lines.append(
            f"    IPv{fam}: listener saw {len(seen)} pkt {' '.join(short(p) for p in seen) or '-'}"
            f" at {','.join(hooks) or '-'}; server wire {len(wire)} pkt {' '.join(short(p) for p in wire) or '-'};"
            f" server UDP {', '.join(str(u['len']) + (' intact' if u['intact'] else ' CORRUPT') for u in udp) or 'nothing'}"
            + (f"; client got {' '.join(short(p) for p in back)}" if back else ""))
    for note in r.get("listener_notes", []):
        lines.append(f"    listener: {note}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--only", help="run only the configurations whose name contains this text")
    ap.add_argument("--nft-only", action="store_true", help="skip iptables-legacy")
    ap.add_argument("--listen", nargs=3, metavar=("QUEUE", "SECONDS", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--capture", nargs=2, metavar=("IFACE", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--udp-recv", nargs=2, metavar=("SECONDS", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--udp-send", nargs=3, metavar=("FAMILY", "DST", "SIZE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.listen:
        return mode_listen(int(a.listen[0]), float(a.listen[1]), a.listen[2])
    if a.capture:
        return mode_capture(a.capture[0], float(a.capture[1]))
    if a.udp_recv:
        return mode_udp_recv(float(a.udp_recv[0]), int(a.udp_recv[1]))
    if a.udp_send:
        return mode_udp_send(int(a.udp_send[0]), a.udp_send[1], int(a.udp_send[2]))

    if os.geteuid() != 0:
        print("nfqueue-fragments: needs root (network namespaces, iptables)", file=sys.stderr)
        return 2
    variants = [(v4, v6) for v4, v6 in (("iptables", "ip6tables"), ("iptables-legacy", "ip6tables-legacy"))
                if shutil.which(v4) and shutil.which(v6) and not (a.nft_only and v4.endswith("legacy"))]
    if not variants or not shutil.which("ip"):
        print("nfqueue-fragments: needs iproute2 and iptables (apt-get install iptables)", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    results = []
    try:
        print(f"kernel {os.uname().release}")
        for v4, v6 in variants:
            print(f"{v4}: {sh(v4, '-V').strip()}")
        n = 0
        for v4, v6 in variants:
            for cfg in CONFIGS:
                if a.only and a.only not in cfg[0]:
                    continue
                n += 1
                try:
                    r = run_config(n, cfg, v4, v6)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    r = {"config": cfg[0], "iptables": v4, "listener": [], "server_wire": [], "server_udp": [],
                         "errors": [str(e)]}
                results.append(r)
                print(summarize(r))
                for e in r["errors"]:
                    print(f"    error: {e}")
                sys.stdout.flush()
    finally:
        cleanup()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"kernel": os.uname().release, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
