#!/usr/bin/env bash
# Produces the project's sample capture, config/sample.pcap, from real Linux
# traffic between two network namespaces, plus the kernel's conntrack view of
# the same traffic as the oracle later tests compare sluice against.
#
#   client ns  (10.0.1.2/24, 2001:db8:1::2/64)  veth "vc"
#        |            <- tcpdump captures here (Ethernet link type)
#   server ns  (10.0.1.1/24, 2001:db8:1::1/64)  veth "vs"
#
# Traffic, in order, with short pauses:
#   1. ping -c 2 (IPv4), ping -6 -c 2
#   2. HTTP over TCP/IPv4: python3 -m http.server on 10.0.1.1:8080, curl, FIN both ways
#   3. UDP request/response to a UDP echo server on 10.0.1.1:5000: two datagrams,
#      then a pause > 2 s (Linux marks a UDP flow ASSURED only when traffic
#      continues 2 s after the first packet), then a third
#   4. UDP to closed port 9 answered by ICMP port unreachable (IPv4) and
#      ICMPv6 destination unreachable / port unreachable (IPv6)
#   5. HTTP over TCP/IPv6: curl -g "http://[2001:db8:1::1]:8080/"
#
# Outputs (written only when the whole run succeeds):
#   config/sample.pcap                  the capture
#   config/sample.txt                   `tcpdump -r config/sample.pcap -n -tt`
#   config/sample.conntrack-events.txt  `conntrack -E -o timestamp,extended` in the
#                                       client namespace during the capture
#   config/sample.conntrack-L.txt       `conntrack -L -o extended` (IPv4 then IPv6)
#                                       in the client namespace right after it
#
# Choices that keep the capture small and deterministic:
#   - checksum offload is off on both veth ends (ethtool -K tx off rx off), or
#     packets sent from the capturing side carry partial checksums in the pcap;
#   - neighbours are static (fixed MACs, nud permanent), so no ARP or NDP;
#   - no DAD and no router solicitations; the capture starts after the MLD
#     reports sent when the links come up.
# Conntrack is switched on in the client namespace by iptables/ip6tables rules
# that use the conntrack match (any such rule registers the conntrack hooks).
#
# Needs root and: tcpdump, iproute2, iputils-ping, curl, ethtool, python3,
# conntrack, iptables. Everything it creates (namespaces, processes, temp
# files) is removed on exit, also on failure; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "make-sample-capture: needs root (network namespaces)" >&2
  exit 1
fi
for tool in tcpdump ip ping curl ethtool conntrack iptables ip6tables ss timeout; do
  command -v "$tool" >/dev/null || { echo "make-sample-capture: missing tool: $tool" >&2; exit 1; }
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

# ---------------------------------------------------------------- names and cleanup

suffix="$$-$RANDOM"
CLIENT="sample-client-$suffix"
SERVER="sample-server-$suffix"
TMP=$(mktemp -d /tmp/sample-capture.XXXXXX)
PIDS=()

C4=10.0.1.2 S4=10.0.1.1 C6=2001:db8:1::2 S6=2001:db8:1::1
CMAC=02:00:0a:00:01:02 SMAC=02:00:0a:00:01:01
HTTP_PORT=8080 UDP_ECHO_PORT=5000 CLOSED_PORT=9

cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    # Bounded wait, then force.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  done
  for ns in "$CLIENT" "$SERVER"; do
    if ip netns list | awk "{print \$1}" | grep -qxF "$ns"; then
      # Anything still running inside was started by this script.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
      ip netns del "$ns"
    fi
  done
  rm -rf "$TMP"
  [ "$rc" -eq 0 ] || echo "make-sample-capture: failed (exit $rc); nothing written to config/" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Foreground helpers. Background processes are started with a plain
# `ip netns exec ... &` instead, so that $! is the process itself (ip execs
# the command) and not a subshell running a function.
inc() { ip netns exec "$CLIENT" "$@"; }
ins() { ip netns exec "$SERVER" "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local tries=$((secs * 10))
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
      echo "make-sample-capture: timed out waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------- topology

ip netns add "$CLIENT"
ip netns add "$SERVER"
for ns in "$CLIENT" "$SERVER"; do
  # Set on "default" before the veth exists in the namespace, so it inherits them.
  ip netns exec "$ns" sysctl -qw \
    net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.default.accept_ra=0 \
    net.ipv6.conf.default.router_solicitations=0 \
    net.ipv6.conf.all.accept_ra=0
  ip netns exec "$ns" ip link set lo up
done
ip link add vc netns "$CLIENT" address "$CMAC" type veth peer name vs netns "$SERVER" address "$SMAC"

inc ethtool -K vc tx off rx off >/dev/null
ins ethtool -K vs tx off rx off >/dev/null

inc ip addr add "$C4/24" dev vc
inc ip addr add "$C6/64" dev vc nodad
ins ip addr add "$S4/24" dev vs
ins ip addr add "$S6/64" dev vs nodad
inc ip link set vc up
ins ip link set vs up
inc ip neigh replace "$S4" lladdr "$SMAC" dev vc nud permanent
inc ip -6 neigh replace "$S6" lladdr "$SMAC" dev vc nud permanent
ins ip neigh replace "$C4" lladdr "$CMAC" dev vs nud permanent
ins ip -6 neigh replace "$C6" lladdr "$CMAC" dev vs nud permanent

# Conntrack in the client namespace: rules that use the conntrack match.
inc iptables -A OUTPUT -m conntrack --ctstate NEW,ESTABLISHED,RELATED,INVALID -j ACCEPT
inc ip6tables -A OUTPUT -m conntrack --ctstate NEW,ESTABLISHED,RELATED,INVALID -j ACCEPT
inc sysctl -qw net.netfilter.nf_conntrack_events=1

wait_for 5 "IPv6 addresses" sh -c "! ip netns exec $CLIENT ip -6 addr show dev vc tentative | grep -q inet6"

# ---------------------------------------------------------------- servers

mkdir -p "$TMP/www"
printf '<p>hello from the sluice sample capture</p>\n' >"$TMP/www/index.html"
ip netns exec "$SERVER" "$PY" -m http.server "$HTTP_PORT" --bind "$S4" --directory "$TMP/www" >"$TMP/http4.log" 2>&1 &
PIDS+=($!)
ip netns exec "$SERVER" "$PY" -m http.server "$HTTP_PORT" --bind "$S6" --directory "$TMP/www" >"$TMP/http6.log" 2>&1 &
PIDS+=($!)
# UDP echo server; exits by itself after 60 s without traffic.
ip netns exec "$SERVER" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(60)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
' "$S4" "$UDP_ECHO_PORT" >"$TMP/udp-echo.log" 2>&1 &
PIDS+=($!)

wait_for 10 "HTTP server on $S4" sh -c "ip netns exec $SERVER ss -Hltn 'sport = :$HTTP_PORT' | grep -qF '$S4:'"
wait_for 10 "HTTP server on $S6" sh -c "ip netns exec $SERVER ss -Hltn 'sport = :$HTTP_PORT' | grep -qF '[$S6]:'"
wait_for 10 "UDP echo server" sh -c "ip netns exec $SERVER ss -Hlun 'sport = :$UDP_ECHO_PORT' | grep -qF '$S4:'"

# Let the MLD reports sent on link-up pass before capturing.
sleep 2

# ---------------------------------------------------------------- capture

ip netns exec "$CLIENT" stdbuf -oL conntrack -E -o timestamp,extended >"$TMP/events.txt" 2>"$TMP/events.err" &
PIDS+=($!)
CONNTRACK_PID=$!
ip netns exec "$CLIENT" tcpdump -i vc -n -U --immediate-mode -Z root -w "$TMP/sample.pcap" 2>"$TMP/tcpdump.err" &
PIDS+=($!)
TCPDUMP_PID=$!
wait_for 10 "tcpdump to start" grep -q "listening on" "$TMP/tcpdump.err"
sleep 0.5

echo "1. ICMP echo"
inc timeout 10 ping -n -q -c 2 -W 2 "$S4" >/dev/null
sleep 0.5
inc timeout 10 ping -6 -n -q -c 2 -W 2 "$S6" >/dev/null
sleep 0.5

echo "2. HTTP over TCP/IPv4"
body=$(inc curl -s --max-time 10 "http://$S4:$HTTP_PORT/")
[ "$body" = "<p>hello from the sluice sample capture</p>" ] || { echo "unexpected HTTP body: $body" >&2; exit 1; }
sleep 0.5

echo "3. UDP request/response (with a 2.6 s pause before the third datagram)"
inc timeout 15 "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.bind((sys.argv[1], 40000))
dst = (sys.argv[2], int(sys.argv[3]))
for i in (1, 2, 3):
    if i == 3:
        time.sleep(2.6)
    msg = b"sluice udp %d" % i
    s.sendto(msg, dst)
    data, _ = s.recvfrom(2048)
    assert data == msg, data
' "$C4" "$S4" "$UDP_ECHO_PORT"
sleep 0.5

echo "4. UDP to a closed port -> ICMP / ICMPv6 port unreachable"
for dst in "$S4" "$S6"; do
  inc timeout 10 "$PY" -c '
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"anyone there?")
try:
    s.recv(2048)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit("no port unreachable received")
' "$dst" "$CLOSED_PORT"
  sleep 0.5
done

echo "5. HTTP over TCP/IPv6"
body=$(inc curl -g -s --max-time 10 "http://[$S6]:$HTTP_PORT/")
[ "$body" = "<p>hello from the sluice sample capture</p>" ] || { echo "unexpected HTTP body: $body" >&2; exit 1; }
sleep 1

# The kernel's table right at the end, before anything expires.
{
  inc conntrack -L -f ipv4 -o extended 2>/dev/null
  inc conntrack -L -f ipv6 -o extended 2>/dev/null
} >"$TMP/conntrack-L.txt"

# SIGTERM, not SIGINT: background jobs of a non-interactive shell start with SIGINT ignored.
kill -TERM "$TCPDUMP_PID"
wait_for 10 "tcpdump to exit" sh -c "! kill -0 $TCPDUMP_PID"
kill -TERM "$CONNTRACK_PID"
wait_for 10 "conntrack -E to exit" sh -c "! kill -0 $CONNTRACK_PID"

# ---------------------------------------------------------------- checks and outputs

count=$(tcpdump -r "$TMP/sample.pcap" -n 2>/dev/null | wc -l)
if [ "$count" -lt 20 ] || [ "$count" -gt 120 ]; then
  echo "make-sample-capture: unexpected packet count $count" >&2
  exit 1
fi
tcpdump -r "$TMP/sample.pcap" -n -vv >"$TMP/verbose.txt" 2>/dev/null
if grep -Eq "bad cksum|incorrect|bad udp cksum|wrong icmp cksum|bad icmp6 cksum" "$TMP/verbose.txt"; then
  echo "make-sample-capture: capture has bad checksums:" >&2
  grep -E "bad cksum|incorrect|bad udp cksum|wrong icmp cksum|bad icmp6 cksum" "$TMP/verbose.txt" >&2
  exit 1
fi
if ! [ -s "$TMP/events.txt" ]; then
  echo "make-sample-capture: no conntrack events recorded" >&2
  exit 1
fi

mkdir -p config
cp "$TMP/sample.pcap" config/sample.pcap
tcpdump -r config/sample.pcap -n -tt >config/sample.txt 2>/dev/null
cp "$TMP/events.txt" config/sample.conntrack-events.txt
cp "$TMP/conntrack-L.txt" config/sample.conntrack-L.txt
echo "wrote config/sample.pcap ($count packets), config/sample.txt," \
  "config/sample.conntrack-events.txt ($(wc -l <config/sample.conntrack-events.txt) events)," \
  "config/sample.conntrack-L.txt ($(wc -l <config/sample.conntrack-L.txt) entries)"
