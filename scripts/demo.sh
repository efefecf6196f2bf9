#!/usr/bin/env bash
# The lab with sluice in the middle, and live traffic through it.
#
#   scripts/demo.sh [--mode nfqueue|tun] [--rounds N] [--keep]
#
# Creates the three-namespace lab (scripts/lab.sh: client ── gateway ── server,
# IPv4 and IPv6), starts `sluice run` in the gateway namespace with
# config/lab.yaml (its control socket, state directory and instance made
# unique for this run), streams `sluice conntrack -E` while the client pings,
# fetches a page over HTTP and exchanges UDP datagrams with the server (both
# families, N rounds, default 3), then shows `sluice conntrack -L`,
# `sluice stats` and the Prometheus endpoint. The gateway runs the lab's
# rulesets (config/lab.v4.rules, lab.v6.rules: LAN out, replies in, REJECT
# for TCP port 81 and UDP port 9); the demo shows a refused connection, a
# connection from the server side that the FORWARD policy drops, and
# `sluice trace` of those packets. With --keep it waits for
# Ctrl-C before tearing down, so you can look around:
#   scripts/lab.sh exec NAME client ping 203.0.113.2
#   node dist/src/cli/main.js conntrack -L --socket SOCKET
# Everything it created (namespaces, sluice, its rules) is removed on exit,
# also after Ctrl-C or a failure. Needs root and a built tree (scripts/setup.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=nfqueue ROUNDS=3 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=${2:?--mode needs nfqueue or tun}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$MODE" in nfqueue|tun) ;; *) echo "demo: --mode must be nfqueue or tun, not $MODE" >&2; exit 2 ;; esac
case "$ROUNDS" in ''|*[!0-9]*) echo "demo: --rounds must be a number" >&2; exit 2 ;; esac
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 100 ] || { echo "demo: --rounds must be 1..100" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces, iptables)" >&2; exit 1; }
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "demo: not built; run scripts/setup.sh first" >&2; exit 1; }

NAME="sluice-demo-$$"
TMP=$(mktemp -d /tmp/sluice-demo.XXXXXX)
SOCK="$TMP/ctl.sock"
NODE=$(command -v node)
SLUICE=("$NODE" "$ROOT/dist/src/cli/main.js")
SLUICE_PID="" EVENTS_PID="" SERVERS=()

# A child that exited stays a zombie until waited for; kill -0 would still succeed.
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  [ -n "$EVENTS_PID" ] && kill "$EVENTS_PID" 2>/dev/null
  if [ -n "$SLUICE_PID" ] && alive "$SLUICE_PID"; then
    say "stopping sluice (SIGTERM: it removes its rules and sysctls)"
    kill -TERM "$SLUICE_PID"
    for _ in $(seq 100); do alive "$SLUICE_PID" || break; sleep 0.1; done
    kill -KILL "$SLUICE_PID" 2>/dev/null
    tail -n 2 "$TMP/sluice.log" | cut -c1-240
  fi
  for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null; done
  "$ROOT/scripts/lab.sh" down "$NAME" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "lab $NAME: client ── lan0 [gateway: sluice, mode $MODE] wan0 ── server"
eval "$("$ROOT/scripts/lab.sh" up "$NAME")"
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cat >"$TMP/sluice.yaml" <<EOF
# config/lab.yaml, with this run's own instance id, socket and state directory
instance: demo$$
mode: $MODE
interfaces: { lan: [$GATEWAY_LAN_IF], wan: [$GATEWAY_WAN_IF] }
nfqueue: { queues: [0], queueBypass: false }
tun: { device: sldemo$(($$ % 100000)), table: $((1000 + $$ % 30000)), rulePriority: 1000 }
conntrack: { max: 65536, acct: true }
log: { level: info, pretty: false, summaryInterval: 5 }
metrics: { port: 9633, address: 127.0.0.1 }
control: { socket: $SOCK }
stateDir: $TMP/state
rules: { ipv4: $ROOT/config/lab.v4.rules, ipv6: $ROOT/config/lab.v6.rules }
EOF

say "starting sluice in $GATEWAY_NS"
ip netns exec "$GATEWAY_NS" "${SLUICE[@]}" run --config "$TMP/sluice.yaml" >"$TMP/sluice.log" 2>&1 &
SLUICE_PID=$!
for _ in $(seq 150); do
  grep -q '"msg":"sluice running"' "$TMP/sluice.log" && break
  alive "$SLUICE_PID" || { cat "$TMP/sluice.log"; echo "demo: sluice exited" >&2; exit 1; }
  sleep 0.1
done
grep -q '"msg":"sluice running"' "$TMP/sluice.log" || { cat "$TMP/sluice.log"; echo "demo: sluice did not start in 15 s" >&2; exit 1; }
grep -h '"msg":"\(queue bound\|tun device open\|plumbing: installed\|sluice running\)"' "$TMP/sluice.log" | cut -c1-220
echo "rules it installed (iptables-save -t raw in the gateway):"
in_ns "$GATEWAY_NS" iptables-save -t raw | grep -e 'sluice:' || echo "  (none: TUN mode uses policy routing)"

say "live connection events (sluice conntrack -E)"
"${SLUICE[@]}" conntrack -E --socket "$SOCK" &
EVENTS_PID=$!
sleep 0.3

# Servers in the server namespace, each bounded in time.
ip netns exec "$SERVER_NS" timeout 120 python3 -m http.server --bind :: 8080 >/dev/null 2>&1 &
SERVERS+=($!)
ip netns exec "$SERVER_NS" timeout 120 python3 -c '
import socket, select
socks = []
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 5353)); socks.append(s)
while True:
    for s in select.select(socks, [], [], 120)[0]:
        data, peer = s.recvfrom(2048); s.sendto(data.upper(), peer)
' &
SERVERS+=($!)
for _ in $(seq 50); do in_ns "$SERVER_NS" ss -ltn | grep -q ':8080' && break; sleep 0.1; done

udp_ask() { # FAMILY ADDRESS
  in_ns "$CLIENT_NS" timeout 5 python3 -c '
import socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"hello through sluice", (sys.argv[2], 5353))
print("  udp reply:", s.recvfrom(2048)[0].decode())
' "$1" "$2"
}

for r in $(seq "$ROUNDS"); do
  echo "-- round $r: ping, HTTP and UDP, IPv4 and IPv6 --"
  in_ns "$CLIENT_NS" ping -c 1 -W 2 "$SERVER_IP4" | grep -e 'bytes from' || echo "  ping $SERVER_IP4 failed"
  in_ns "$CLIENT_NS" ping -c 1 -W 2 "$SERVER_IP6" | grep -e 'bytes from' || echo "  ping $SERVER_IP6 failed"
  in_ns "$CLIENT_NS" curl -s -m 5 -o /dev/null -w "  http://$SERVER_IP4:8080/ -> %{http_code}\n" "http://$SERVER_IP4:8080/" || echo "  curl v4 failed"
  in_ns "$CLIENT_NS" curl -s -m 5 -o /dev/null -w "  http://[$SERVER_IP6]:8080/ -> %{http_code}\n" "http://[$SERVER_IP6]:8080/" || echo "  curl v6 failed"
  udp_ask 4 "$SERVER_IP4" || echo "  udp v4 failed"
  udp_ask 6 "$SERVER_IP6" || echo "  udp v6 failed"
  sleep 0.5
done
sleep 0.3
kill "$EVENTS_PID" 2>/dev/null; wait "$EVENTS_PID" 2>/dev/null || true; EVENTS_PID=""

say "the rules at work (sluice trace, live)"
"${SLUICE[@]}" trace -p tcp -m multiport --dports 81,8080 --seconds 6 --count 3 --socket "$SOCK" &
TRACE_PID=$!
for _ in $(seq 50); do grep -q '"msg":"trace started"' "$TMP/sluice.log" && break; sleep 0.1; done
echo "-- client → server TCP port 81 (REJECT --reject-with tcp-reset):"
in_ns "$CLIENT_NS" curl -s -m 3 -o /dev/null "http://$SERVER_IP4:81/" && echo "  connected?!" || echo "  curl: connection refused at once (exit $?)"
echo "-- server → client TCP port 8080 (not a reply: the FORWARD policy drops it):"
in_ns "$SERVER_NS" curl -s -m 2 -o /dev/null "http://$CLIENT_IP4:8080/" && echo "  connected?!" || echo "  curl: timed out (exit $?)"
wait "$TRACE_PID" 2>/dev/null || true

say "sluice conntrack -L"
"${SLUICE[@]}" conntrack -L --socket "$SOCK"
say "sluice rules save (iptables-save -c of the live IPv4 ruleset)"
"${SLUICE[@]}" rules save --socket "$SOCK"
say "sluice stats"
"${SLUICE[@]}" stats --socket "$SOCK"
say "Prometheus (GET /metrics in the gateway namespace), a few lines"
in_ns "$GATEWAY_NS" curl -s -m 5 http://127.0.0.1:9633/metrics | grep -E '^sluice_(pipeline_packets|queue_packets_received|conntrack_inserted)' || true

if [ "$KEEP" = 1 ]; then
  say "running; Ctrl-C tears everything down"
  echo "  lab: scripts/lab.sh exec $NAME client ping $SERVER_IP4"
  echo "  table: node dist/src/cli/main.js conntrack -L --socket $SOCK"
  wait "$SLUICE_PID" || true
fi
