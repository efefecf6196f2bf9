#!/usr/bin/env bash
# The kernel's own cost per rule for the rulesets of scripts/bench/rules.ts,
# so sluice's per-rule figures have a reference measured on the same machine.
#
# A forwarding test through namespaces cannot isolate a few ns per rule
# (veth, softirq and scheduling noise are microseconds), so this measures
# the OUTPUT hook instead, where all of it runs in the sender's own system
# call and is charged to its CPU time:
#
#   netns NAME:  udp_send ──sendmmsg──▶ UDP ──▶ filter OUTPUT (the rules) ──▶ veth0 ──▶ veth1 (drops: not its MAC)
#                10.9.0.1:40000 → 10.9.0.2:443, 4-byte payload, batches of 64; 10.9.0.2 is a permanent
#                neighbour entry, so no ARP; veth1 discards the frames (PACKET_OTHERHOST) at once.
#
# One UDP flow: conntrack keeps it NEW (no reply ever comes), so the last
# rule, `--ctstate NEW`, accepts every packet after N-1 filler rules that
# do not match: the same five shapes as rules.ts (tcp -> udp, -i wan0 ->
# -o veth0, the LAN /24 -> 10.9.0.0/24), so 3 in 5 get past the base match
# into their extension matches, as there. This is rules.ts's "est-last"
# traversal (every rule evaluated); it does not measure conntrack's
# new-connection path.
#
# Rows, each in a fresh namespace (no hook or table left from the previous):
#   no ruleset   nothing loaded: no netfilter hook, no conntrack (the bare send path)
#   1 rule       only the accepting rule (conntrack on): the baseline the others are compared with
#   N rules      N-1 fillers + the accepting rule
# for each backend: legacy (iptables-legacy: x_tables, ipt_do_table, the
# model sluice's evaluator follows) and nft (iptables-nft: the rules
# translated to nf_tables; multiport becomes a set, comment disappears,
# the rest runs as xt compat or native expressions).
#
# Figure: CPU time (user + system, getrusage) of the sender per packet,
# median (min) of RUNS runs after a warm-up; "/rule" = (row - 1 rule) / (N - 1).
# Ticks are sampled at HZ, so runs are sized to last about a second or more.
#
# Usage (root; needs gcc, ip, iptables-legacy-restore / iptables-nft-restore):
#   scripts/bench/rules-kernel.sh                  # SIZES="10 100 1000" RUNS=5 BACKENDS="legacy nft"
#   SIZES="10 100" RUNS=3 BACKENDS=legacy scripts/bench/rules-kernel.sh
# Prints a table, then one JSON line with the machine and every figure.
set -euo pipefail

SIZES=${SIZES:-"10 100 1000"}
RUNS=${RUNS:-5}
BACKENDS=${BACKENDS:-"legacy nft"}
NS="sluice-rulesk-$$"
WORK=$(mktemp -d)

cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "rules-kernel.sh: needs root (network namespaces, iptables)" >&2; exit 1; }
for c in gcc ip iptables-legacy-restore iptables-nft-restore; do
  command -v "$c" >/dev/null || { echo "rules-kernel.sh: $c not found" >&2; exit 1; }
done

# ── the sender ───────────────────────────────────────────────────────────
cat >"$WORK/udp_send.c" <<'EOF'
/* udp_send SRC DST PORT COUNT: COUNT 4-byte datagrams SRC:40000 -> DST:PORT with sendmmsg (batches of 64)
 * after 20000 unmeasured ones; prints "sent user_ns sys_ns wall_ns" for the measured part. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static long send_n(int fd, struct mmsghdr *m, long count) {
  long sent = 0;
  while (sent < count) {
    int want = count - sent < BATCH ? (int)(count - sent) : BATCH;
    int n = sendmmsg(fd, m, want, 0);
    if (n < 0) {
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) continue;
      perror("sendmmsg");
      exit(1);
    }
    sent += n;
  }
  return sent;
}

static double tv_ns(struct timeval t) { return t.tv_sec * 1e9 + t.tv_usec * 1e3; }

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: udp_send SRC DST PORT COUNT\n"); return 2; }
  long count = atol(argv[4]);
  int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
  /* The previous run's socket may not be closed yet when this one binds. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(40000) };
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
  a.sin_port = htons(atoi(argv[3]));
  inet_pton(AF_INET, argv[2], &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
  static char payload[4] = "abcd";
  static struct iovec iov[BATCH];
  static struct mmsghdr m[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = payload;
    iov[i].iov_len = sizeof payload;
    m[i].msg_hdr.msg_iov = &iov[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  send_n(fd, m, 20000);
  struct rusage r0, r1;
  struct timespec t0, t1;
  getrusage(RUSAGE_SELF, &r0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long sent = send_n(fd, m, count);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  getrusage(RUSAGE_SELF, &r1);
  close(fd);
  printf("%ld %.0f %.0f %.0f\n", sent, tv_ns(r1.ru_utime) - tv_ns(r0.ru_utime), tv_ns(r1.ru_stime) - tv_ns(r0.ru_stime),
         (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec));
  return 0;
}
EOF
gcc -O2 -Wall -o "$WORK/udp_send" "$WORK/udp_send.c"

# ── rulesets (rules.ts's shapes; see the header) ─────────────────────────
filler() {
  local k=$1
  case $((k % 5)) in
    0) echo "-A OUTPUT -s 198.51.100.$((1 + k % 250))/32 -p udp --dport $((10000 + k)) -j ACCEPT" ;;
    1) echo "-A OUTPUT -s 192.0.2.$((k % 256))/32 -p udp --dport 53 -m comment --comment \"resolver $k\" -j ACCEPT" ;;
    2) echo "-A OUTPUT -d 10.9.0.0/24 -p udp -m multiport --dports $((20000 + k)),$((20001 + k)),$((20002 + k)) -m comment --comment \"svc $k\" -j ACCEPT" ;;
    3) echo "-A OUTPUT -o veth0 -p udp --dport $((40000 + k)) -m conntrack --ctstate NEW -j ACCEPT" ;;
    *) echo "-A OUTPUT -s 10.0.$((k >> 8)).$((k & 255))/32 -o veth0 -j ACCEPT" ;;
  esac
}

# ruleset N: N-1 fillers, then the rule that accepts the flow (policy DROP: a packet no rule accepts fails the send).
ruleset() {
  local n=$1
  echo "*filter"
  echo ":INPUT ACCEPT [0:0]"
  echo ":FORWARD ACCEPT [0:0]"
  echo ":OUTPUT DROP [0:0]"
  for ((k = 0; k < n - 1; k++)); do filler "$k"; done
  echo "-A OUTPUT -o veth0 -d 10.9.0.2/32 -p udp --dport 443 -m conntrack --ctstate NEW -m comment --comment \"https to web\" -j ACCEPT"
  echo "COMMIT"
}

# ── one row ──────────────────────────────────────────────────────────────
setup_ns() {
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add veth0 type veth peer name veth1
  ip -n "$NS" addr add 10.9.0.1/24 dev veth0
  ip -n "$NS" link set veth0 up
  ip -n "$NS" link set veth1 up
  ip -n "$NS" neigh replace 10.9.0.2 lladdr 02:00:00:00:00:02 dev veth0 nud permanent
}

# count N: packets per run, so that a run lasts about a second or more at ~20 ns a rule.
count_for() { echo $((1000000 * 10 / (10 + $1 / 10))); }

# row BACKEND N (N=0: no ruleset) -> "median min wall_median" in ns/packet (CPU, CPU, wall)
row() {
  local backend=$1 n=$2 count cpu=() wall=()
  setup_ns
  if ((n > 0)); then
    ruleset "$n" >"$WORK/rules"
    ip netns exec "$NS" "iptables-$backend-restore" <"$WORK/rules"
    local loaded
    loaded=$(ip netns exec "$NS" "iptables-$backend-save" | grep -c '^-A OUTPUT' || true)
    [ "$loaded" = "$n" ] || { echo "rules-kernel.sh: $backend loaded $loaded rules, expected $n" >&2; exit 1; }
  fi
  count=$(count_for "$n")
  for ((r = 0; r < RUNS; r++)); do
    local out
    out=$(ip netns exec "$NS" "$WORK/udp_send" 10.9.0.1 10.9.0.2 443 "$count")
    read -r sent user sys w <<<"$out"
    cpu+=("$(awk -v u="$user" -v s="$sys" -v n="$sent" 'BEGIN { printf "%.1f", (u + s) / n }')")
    wall+=("$(awk -v w="$w" -v n="$sent" 'BEGIN { printf "%.1f", w / n }')")
  done
  if ((n > 0)); then
    # Every packet went through the accepting rule (its counter), none fell to the policy.
    local accepted
    accepted=$(ip netns exec "$NS" "iptables-$backend" -L OUTPUT -v -x -n | awk '/https to web/ { print $1 }')
    ((accepted >= RUNS * count)) || { echo "rules-kernel.sh: $backend N=$n: accepting rule counted $accepted packets" >&2; exit 1; }
  fi
  ip netns del "$NS"
  local med min wmed
  med=$(printf '%s\n' "${cpu[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  min=$(printf '%s\n' "${cpu[@]}" | sort -g | head -1)
  wmed=$(printf '%s\n' "${wall[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  echo "$med $min $wmed $count $(IFS=,; echo "${cpu[*]}")"
}

# ── main ─────────────────────────────────────────────────────────────────
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
CORES=$(nproc)
KERNEL=$(uname -r)
IPT=$(iptables-legacy --version | awk '{ print $2 }')

echo "$CPU_MODEL x$CORES, Linux $KERNEL, iptables $IPT, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU ns per packet of a UDP sender whose packets traverse filter OUTPUT (sendmmsg, 4-byte payload); median (min) of $RUNS runs; /rule = (row - 1 rule) / (N - 1)"
echo ""
printf '%-8s %-12s %6s %9s %9s %9s %9s\n' backend ruleset rules "ns/pkt" "(min)" "wall" "ns/rule"
json_rows=()
for backend in $BACKENDS; do
  base=""
  for n in 0 1 $SIZES; do
    line=$(row "$backend" "$n")
    read -r med min wmed count runs <<<"$line"
    label="$n rules"
    ((n == 0)) && label="no ruleset"
    ((n == 1)) && label="1 rule"
    per="-"
    ((n == 1)) && base=$med
    if ((n > 1)); then per=$(awk -v a="$med" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / (n - 1) }'); fi
    printf '%-8s %-12s %6s %9s %9s %9s %9s\n' "$backend" "$label" "$n" "$med" "$min" "$wmed" "$per"
    json_rows+=("{\"backend\":\"$backend\",\"ruleset\":\"$label\",\"rules\":$n,\"cpuMedianNs\":$med,\"cpuMinNs\":$min,\"wallMedianNs\":$wmed,\"perRun\":$count,\"runsCpuNs\":[$runs],\"perRuleCpuNs\":$([ "$per" = "-" ] && echo null || echo "$per")}")
  done
done
printf '{"bench":"rules-kernel","machine":{"cpu":"%s","cores":%s,"kernel":"%s","iptables":"%s","loadavgAtEnd":"%s"},"params":{"sizes":[%s],"runs":%s},"rows":[%s]}\n' \
  "$CPU_MODEL" "$CORES" "$KERNEL" "$IPT" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(echo "$SIZES" | tr ' ' ',')" "$RUNS" "$(IFS=,; echo "${json_rows[*]}")"
