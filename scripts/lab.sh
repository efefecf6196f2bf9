#!/usr/bin/env bash
# The three-namespace lab: a client on a LAN, sluice's gateway, a server.
#
#   NAME-client              NAME-gateway                      NAME-server
#   eth0 ───────veth─────── lan0          wan0 ───────veth─────── eth0
#   10.0.1.2/24             10.0.1.1/24    203.0.113.1/24         203.0.113.2/24
#   2001:db8:1::2/64        2001:db8:1::1/64  2001:db8:2::1/64    2001:db8:2::2/64
#   default via .1 / ::1    ip_forward=1, ipv6 forwarding=1       routes to 10.0.1.0/24 and
#                                                                 2001:db8:1::/64 via the gateway
#
# 10.0.1.0/24 is private (RFC 1918); 203.0.113.0/24 (RFC 5737) and
# 2001:db8::/32 (RFC 3849) are documentation ranges: traffic never leaves the
# namespaces (the veths are created inside them and never exist in the
# caller's namespace). No NAT: the server routes back to the LAN. IPv6 DAD is
# off (accept_dad=0, addresses nodad), so addresses work at once.
#
# Usage (as root):
#   scripts/lab.sh up [NAME]          create the lab; NAME defaults to sluice-lab-$$.
#                                     stdout: shell assignments only, e.g.
#                                       eval "$(scripts/lab.sh up mylab)"
#                                     Refuses if any NAME-* namespace exists. If a
#                                     step fails, it removes what it created and exits 1.
#   scripts/lab.sh down NAME          remove the lab: end the processes still running
#                                     in its namespaces (TERM, then KILL after 2 s), delete
#                                     the namespaces (their veths go with them). Works on
#                                     a half-built lab and when nothing is left (exit 0;
#                                     1 only if a namespace could not be deleted).
#   scripts/lab.sh exec NAME ROLE CMD...
#                                     run CMD in NAME's ROLE namespace (client|gateway|server),
#                                     e.g. sluice in the middle:
#                                       scripts/lab.sh exec mylab gateway npx sluice run --config F
#   scripts/lab.sh env NAME           print the assignments again (names and addresses are
#                                     fixed given NAME).
#   scripts/lab.sh list               print the names of the labs that exist.
#
# Assignments printed by up/env (one per line):
#   LAB_NAME CLIENT_NS GATEWAY_NS SERVER_NS
#   CLIENT_IF GATEWAY_LAN_IF GATEWAY_WAN_IF SERVER_IF
#   CLIENT_IP4 CLIENT_IP6 GATEWAY_LAN_IP4 GATEWAY_LAN_IP6
#   GATEWAY_WAN_IP4 GATEWAY_WAN_IP6 SERVER_IP4 SERVER_IP6
#   LAN_NET4 LAN_NET6 WAN_NET4 WAN_NET6
#
# NAME: 1-40 characters of [A-Za-z0-9_.-], starting with a letter or digit;
# namespaces are NAME-client, NAME-gateway, NAME-server, so parallel labs with
# different names never collide. Every command up/down run is bounded by
# `timeout` (exec runs yours unbounded).
#
# Test hook: SLUICE_LAB_FAIL_AT=N makes `up` exit 1 right after step N (1..6)
# WITHOUT cleaning up, as if it had been killed there; `down` must still work.
set -euo pipefail

readonly ROLES=(client gateway server)
readonly T=10 # seconds per command

CLIENT_IF=eth0 GATEWAY_LAN_IF=lan0 GATEWAY_WAN_IF=wan0 SERVER_IF=eth0
CLIENT_IP4=10.0.1.2 GATEWAY_LAN_IP4=10.0.1.1 LAN_NET4=10.0.1.0/24
CLIENT_IP6=2001:db8:1::2 GATEWAY_LAN_IP6=2001:db8:1::1 LAN_NET6=2001:db8:1::/64
SERVER_IP4=203.0.113.2 GATEWAY_WAN_IP4=203.0.113.1 WAN_NET4=203.0.113.0/24
SERVER_IP6=2001:db8:2::2 GATEWAY_WAN_IP6=2001:db8:2::1 WAN_NET6=2001:db8:2::/64

log() { echo "lab: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  sed -n '/^# Usage/,/^# Assignments/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

check_name() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$ ]] || die "bad lab name '$1' (1-40 of [A-Za-z0-9_.-], starting with a letter or digit)"
}

ns_of() { echo "$1-$2"; }
ns_exists() { [ -e "/run/netns/$1" ]; }
in_ns() { local ns=$1; shift; timeout "$T" ip netns exec "$ns" "$@"; }

print_env() {
  local name=$1 v
  printf 'LAB_NAME=%q\n' "$name"
  printf 'CLIENT_NS=%q\nGATEWAY_NS=%q\nSERVER_NS=%q\n' "$(ns_of "$name" client)" "$(ns_of "$name" gateway)" "$(ns_of "$name" server)"
  for v in CLIENT_IF GATEWAY_LAN_IF GATEWAY_WAN_IF SERVER_IF \
    CLIENT_IP4 CLIENT_IP6 GATEWAY_LAN_IP4 GATEWAY_LAN_IP6 \
    GATEWAY_WAN_IP4 GATEWAY_WAN_IP6 SERVER_IP4 SERVER_IP6 \
    LAN_NET4 LAN_NET6 WAN_NET4 WAN_NET6; do
    printf '%s=%q\n' "$v" "${!v}"
  done
}

# Ends the processes left in a namespace (a daemon, tcpdump, a server) so
# that deleting the namespace really frees it and its veths.
kill_ns_pids() {
  local ns=$1 pids i
  pids=$(timeout "$T" ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  log "ending processes in $ns: $(echo $pids)"
  kill -TERM $pids 2>/dev/null || true
  for i in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(timeout "$T" ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    sleep 0.2
  done
  kill -KILL $pids 2>/dev/null || true
}

cmd_down() {
  local name=$1 role ns rc=0
  check_name "$name"
  for role in "${ROLES[@]}"; do
    ns=$(ns_of "$name" "$role")
    ns_exists "$ns" || continue
    kill_ns_pids "$ns"
    if timeout "$T" ip netns del "$ns"; then
      log "deleted namespace $ns"
    else
      log "could not delete namespace $ns"
      rc=1
    fi
  done
  return $rc
}

step() {
  # step N: called after step N is done; the test hook may stop here.
  if [ "${SLUICE_LAB_FAIL_AT:-}" = "$1" ]; then
    trap - EXIT
    log "SLUICE_LAB_FAIL_AT=$1: stopping here without cleaning up"
    exit 1
  fi
}

UP_NAME=
on_up_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -n "$UP_NAME" ]; then
    log "up failed (exit $rc); removing lab $UP_NAME"
    cmd_down "$UP_NAME" || true
    exit 1
  fi
}

cmd_up() {
  local name=$1 role ns
  check_name "$name"
  local c g s
  c=$(ns_of "$name" client) g=$(ns_of "$name" gateway) s=$(ns_of "$name" server)
  for ns in "$c" "$g" "$s"; do
    ns_exists "$ns" && die "namespace $ns exists already; pick another name or run: $0 down $name"
  done
  # From here on, a failure removes what this run created.
  UP_NAME=$name
  trap on_up_exit EXIT

  # 1: namespaces, loopback up, no DAD on any device created after this.
  for ns in "$c" "$g" "$s"; do
    timeout "$T" ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    in_ns "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
  done
  step 1

  # 2: veths, created directly in their namespaces.
  timeout "$T" ip link add "$CLIENT_IF" netns "$c" type veth peer name "$GATEWAY_LAN_IF" netns "$g"
  timeout "$T" ip link add "$GATEWAY_WAN_IF" netns "$g" type veth peer name "$SERVER_IF" netns "$s"
  step 2

  # 3: addresses, links up.
  in_ns "$c" ip addr add "$CLIENT_IP4/24" dev "$CLIENT_IF"
  in_ns "$c" ip -6 addr add "$CLIENT_IP6/64" dev "$CLIENT_IF" nodad
  in_ns "$g" ip addr add "$GATEWAY_LAN_IP4/24" dev "$GATEWAY_LAN_IF"
  in_ns "$g" ip -6 addr add "$GATEWAY_LAN_IP6/64" dev "$GATEWAY_LAN_IF" nodad
  in_ns "$g" ip addr add "$GATEWAY_WAN_IP4/24" dev "$GATEWAY_WAN_IF"
  in_ns "$g" ip -6 addr add "$GATEWAY_WAN_IP6/64" dev "$GATEWAY_WAN_IF" nodad
  in_ns "$s" ip addr add "$SERVER_IP4/24" dev "$SERVER_IF"
  in_ns "$s" ip -6 addr add "$SERVER_IP6/64" dev "$SERVER_IF" nodad
  in_ns "$c" ip link set "$CLIENT_IF" up
  in_ns "$g" ip link set "$GATEWAY_LAN_IF" up
  in_ns "$g" ip link set "$GATEWAY_WAN_IF" up
  in_ns "$s" ip link set "$SERVER_IF" up
  step 3

  # 4: gateway forwards.
  in_ns "$g" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  step 4

  # 5: routes: client's default via the gateway, server's route back to the LAN.
  in_ns "$c" ip route add default via "$GATEWAY_LAN_IP4"
  in_ns "$c" ip -6 route add default via "$GATEWAY_LAN_IP6"
  in_ns "$s" ip route add "$LAN_NET4" via "$GATEWAY_WAN_IP4"
  in_ns "$s" ip -6 route add "$LAN_NET6" via "$GATEWAY_WAN_IP6"
  step 5

  # 6: wait (bounded) until every veth reports carrier, so the first packet is not lost.
  local i ok
  for i in $(seq 1 50); do
    ok=1
    [[ "$(in_ns "$c" ip link show "$CLIENT_IF")" == *LOWER_UP* ]] || ok=0
    [[ "$(in_ns "$g" ip link show "$GATEWAY_LAN_IF")" == *LOWER_UP* ]] || ok=0
    [[ "$(in_ns "$g" ip link show "$GATEWAY_WAN_IF")" == *LOWER_UP* ]] || ok=0
    [[ "$(in_ns "$s" ip link show "$SERVER_IF")" == *LOWER_UP* ]] || ok=0
    [ $ok -eq 1 ] && break
    sleep 0.1
  done
  [ $ok -eq 1 ] || die "veths did not come up"
  step 6

  trap - EXIT
  log "lab $name is up"
  print_env "$name"
}

cmd_exec() {
  local name=$1 role=$2
  shift 2
  check_name "$name"
  case "$role" in client | gateway | server) ;; *) die "ROLE must be client, gateway or server, not '$role'" ;; esac
  local ns
  ns=$(ns_of "$name" "$role")
  ns_exists "$ns" || die "no namespace $ns (is lab $name up?)"
  exec ip netns exec "$ns" "$@"
}

cmd_list() {
  local f
  for f in /run/netns/*-client /run/netns/*-gateway /run/netns/*-server; do
    [ -e "$f" ] || continue
    f=${f##*/}
    echo "${f%-*}"
  done | sort -u
}

[ $# -ge 1 ] || usage
case "$1" in
  up)
    [ $# -le 2 ] || usage
    cmd_up "${2:-sluice-lab-$$}"
    ;;
  down)
    [ $# -eq 2 ] || usage
    cmd_down "$2"
    ;;
  exec)
    [ $# -ge 4 ] || usage
    shift
    cmd_exec "$@"
    ;;
  env)
    [ $# -eq 2 ] || usage
    check_name "$2"
    print_env "$2"
    ;;
  list)
    cmd_list
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
