/*
 * nfq_accept: the smallest useful NFQUEUE listener, as a baseline for
 * scripts/bench/forward.ts (row b). Bench-only: not part of the addon, built
 * by the bench with gcc against Debian's libnetfilter-queue-dev.
 *
 *   nfq_accept QUEUE [--gso] [--rcvbuf BYTES] [--maxlen N]
 *
 * What it does, and nothing more: open the queue with libnetfilter_queue,
 * copy whole packets (NFQNL_COPY_PACKET, 0xffff bytes), then one recv() per
 * packet and one nfq_set_verdict(NF_ACCEPT) per packet, which is how the
 * library's own example and most NFQUEUE programs are written. The verdict is
 * given without looking at the packet: the row measures the queue mechanics.
 *
 * Kept equal to what sluice asks of the kernel, so only the listener differs:
 * the same socket receive buffer (8 MiB, SO_RCVBUFFORCE) and queue length
 * (1024, the kernel's default), NETLINK_NO_ENOBUFS (an overflow drops
 * packets instead of failing recv), and F_GSO only with --gso.
 *
 * Prints `{"ready":true,"queue":N}` on stdout once bound, and on SIGTERM or
 * SIGINT `{"packets":N,"bytes":B,"recvErrors":E}` before exiting 0.
 * Exits 1 with a message on stderr when a setup step fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

/* One netlink message per packet; with F_GSO a packet can be 64 KB plus headers. */
#define RECV_BUF_SIZE (128 * 1024)

static volatile sig_atomic_t stop_requested = 0;
static uint64_t packets = 0;
static uint64_t bytes = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Called by nfq_handle_packet for each queued packet: accept it as it is. */
static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data) {
  (void)msg;
  (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (ph == NULL) return 0;
  unsigned char *payload;
  int len = nfq_get_payload(nfa, &payload);
  if (len > 0) bytes += (uint64_t)len;
  packets++;
  return nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, NULL);
}

static int fail(const char *what) {
  fprintf(stderr, "nfq_accept: %s: %s\n", what, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: nfq_accept QUEUE [--gso] [--rcvbuf BYTES] [--maxlen N]\n");
    return 2;
  }
  unsigned queue = (unsigned)strtoul(argv[1], NULL, 10);
  int gso = 0;
  int rcvbuf = 8 << 20;
  uint32_t maxlen = 1024;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--gso") == 0) gso = 1;
    else if (strcmp(argv[i], "--rcvbuf") == 0 && i + 1 < argc) rcvbuf = atoi(argv[++i]);
    else if (strcmp(argv[i], "--maxlen") == 0 && i + 1 < argc) maxlen = (uint32_t)strtoul(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "nfq_accept: unknown argument %s\n", argv[i]);
      return 2;
    }
  }

  /* No SA_RESTART: a signal must interrupt the blocking recv(). */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct nfq_handle *h = nfq_open();
  if (h == NULL) return fail("nfq_open");
  /* nfq_bind_pf / nfq_unbind_pf are not called: since Linux 3.8 the kernel
     ignores the per-family bind, and nfq_create_queue sends the queue BIND
     command that matters. */
  struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
  if (qh == NULL) return fail("nfq_create_queue (is the queue taken?)");
  if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 0xffff) < 0) return fail("nfq_set_mode");
  if (nfq_set_queue_maxlen(qh, maxlen) < 0) return fail("nfq_set_queue_maxlen");
  if (gso && nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0) return fail("nfq_set_queue_flags(F_GSO)");

  int fd = nfq_fd(h);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0)
    return fail("setsockopt(SO_RCVBUF)");
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

  printf("{\"ready\":true,\"queue\":%u,\"gso\":%s}\n", queue, gso ? "true" : "false");
  fflush(stdout);

  static char buf[RECV_BUF_SIZE] __attribute__((aligned(8)));
  uint64_t recv_errors = 0;
  while (!stop_requested) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      nfq_handle_packet(h, buf, (int)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOBUFS) {
      recv_errors++;
      continue;
    }
    recv_errors++;
    if (recv_errors > 1000) {
      fprintf(stderr, "nfq_accept: recv keeps failing: %s\n", strerror(errno));
      break;
    }
  }

  /* Packets still queued get the kernel's default on unbind: dropped. */
  nfq_destroy_queue(qh);
  nfq_close(h);
  printf("{\"packets\":%llu,\"bytes\":%llu,\"recvErrors\":%llu}\n", (unsigned long long)packets,
         (unsigned long long)bytes, (unsigned long long)recv_errors);
  fflush(stdout);
  return 0;
}
