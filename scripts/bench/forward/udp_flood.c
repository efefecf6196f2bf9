/*
 * udp_flood: the small-packet load for scripts/bench/forward.ts. Sends UDP
 * datagrams of a fixed payload size to one address as fast as it can, for a
 * bounded time, BATCH datagrams per sendmmsg call, so that the sender outruns
 * the forwarding element under test and the delivered rate measures the
 * element. iperf3 -u writes one datagram per system call and tops out far
 * lower on a 2-vCPU VM.
 *
 *   udp_flood [-i IFNAME -m DST_MAC] DST_IPV4 PORT PAYLOAD_BYTES SECONDS [BATCH]
 *
 * Two ways to send:
 * - default: a connected UDP socket (the whole local stack per datagram);
 * - -i/-m: an AF_PACKET socket on IFNAME with PACKET_QDISC_BYPASS, sending
 *   ready-made Ethernet frames to DST_MAC (the gateway's MAC): no socket
 *   lookup, routing, neighbour or qdisc work per packet, so the sender's
 *   CPU goes further. The frames are what the UDP socket would send: IPv4
 *   (DF, TTL 64, source = IFNAME's address) with a complete UDP checksum.
 *   On a 2-CPU machine the sender's CPU also runs the gateway's receive
 *   path (veth hands the frame over in the sender's softirq), so the
 *   cheaper the sender, the more is left for that.
 *
 * Bounded: SECONDS is at most 600, and the loop reads the clock after every
 * batch. Send errors (ENOBUFS, ECONNREFUSED after an ICMP error) are counted
 * and the loop goes on.
 *
 * Prints one JSON line on exit:
 *   {"sent":N,"errors":E,"seconds":S,"cpuSeconds":C,"userSeconds":U,"mode":"udp"|"packet"}
 * where cpuSeconds is the sender's own user+system time and userSeconds its
 * user time alone (getrusage).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define MAX_PAYLOAD 1472
#define MAX_SECONDS 600
#define ETH_LEN 14
#define IP_LEN 20
#define UDP_LEN 8

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* RFC 1071 one's-complement sum of 16-bit words, starting from `sum`. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)v[i];
  return 0;
}

/* Builds Ethernet + IPv4 + UDP + payload at `f`; returns the frame length. */
static size_t build_frame(uint8_t *f, const uint8_t dst_mac[6], const uint8_t src_mac[6], struct in_addr src,
                          struct in_addr dst, uint16_t sport, uint16_t dport, int payload) {
  size_t ip_total = IP_LEN + UDP_LEN + (size_t)payload;
  memcpy(f, dst_mac, 6);
  memcpy(f + 6, src_mac, 6);
  f[12] = 0x08, f[13] = 0x00;
  uint8_t *ip = f + ETH_LEN;
  memset(ip, 0, IP_LEN);
  ip[0] = 0x45;
  ip[2] = (uint8_t)(ip_total >> 8), ip[3] = (uint8_t)ip_total;
  ip[6] = 0x40; /* DF */
  ip[8] = 64;
  ip[9] = 17;
  memcpy(ip + 12, &src, 4);
  memcpy(ip + 16, &dst, 4);
  uint16_t ipck = fold(sum16(ip, IP_LEN, 0));
  ip[10] = (uint8_t)(ipck >> 8), ip[11] = (uint8_t)ipck;
  uint8_t *udp = ip + IP_LEN;
  size_t udp_len = UDP_LEN + (size_t)payload;
  udp[0] = (uint8_t)(sport >> 8), udp[1] = (uint8_t)sport;
  udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
  udp[4] = (uint8_t)(udp_len >> 8), udp[5] = (uint8_t)udp_len;
  udp[6] = udp[7] = 0;
  for (int i = 0; i < payload; i++) udp[UDP_LEN + i] = (uint8_t)i;
  /* Pseudo-header (RFC 768): addresses, protocol, UDP length. */
  uint32_t sum = sum16(ip + 12, 8, 0) + 17 + (uint32_t)udp_len;
  uint16_t uck = fold(sum16(udp, udp_len, sum));
  if (uck == 0) uck = 0xffff; /* 0 means "no checksum" */
  udp[6] = (uint8_t)(uck >> 8), udp[7] = (uint8_t)uck;
  return ETH_LEN + ip_total;
}

int main(int argc, char **argv) {
  const char *ifname = NULL, *mac_text = NULL;
  int opt;
  while ((opt = getopt(argc, argv, "i:m:")) != -1) {
    if (opt == 'i') ifname = optarg;
    else if (opt == 'm') mac_text = optarg;
    else return 2;
  }
  if (argc - optind < 4 || (ifname == NULL) != (mac_text == NULL)) {
    fprintf(stderr, "usage: udp_flood [-i IFNAME -m DST_MAC] DST_IPV4 PORT PAYLOAD_BYTES SECONDS [BATCH]\n");
    return 2;
  }
  char **a = argv + optind;
  struct in_addr dst_ip;
  if (inet_pton(AF_INET, a[0], &dst_ip) != 1) {
    fprintf(stderr, "udp_flood: bad address %s\n", a[0]);
    return 2;
  }
  int port = atoi(a[1]);
  int payload = atoi(a[2]);
  double seconds = atof(a[3]);
  int batch = argc - optind > 4 ? atoi(a[4]) : 64;
  if (port < 1 || port > 65535 || payload < 0 || payload > MAX_PAYLOAD || !(seconds > 0 && seconds <= MAX_SECONDS) ||
      batch < 1 || batch > MAX_BATCH) {
    fprintf(stderr, "udp_flood: port 1..65535, payload 0..%d, seconds (0, %d], batch 1..%d\n", MAX_PAYLOAD, MAX_SECONDS,
            MAX_BATCH);
    return 2;
  }

  static uint8_t data[ETH_LEN + IP_LEN + UDP_LEN + MAX_PAYLOAD];
  size_t len;
  int fd;
  if (ifname == NULL) {
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = dst_ip};
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
      fprintf(stderr, "udp_flood: socket/connect: %s\n", strerror(errno));
      return 1;
    }
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    for (int i = 0; i < payload; i++) data[i] = (uint8_t)i;
    len = (size_t)payload;
  } else {
    uint8_t dst_mac[6], src_mac[6];
    if (parse_mac(mac_text, dst_mac) != 0) {
      fprintf(stderr, "udp_flood: bad MAC %s\n", mac_text);
      return 2;
    }
    fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, receives nothing */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
      fprintf(stderr, "udp_flood: %s: %s\n", ifname, strerror(errno));
      return 1;
    }
    memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
    int sfd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sfd < 0 || ioctl(sfd, SIOCGIFADDR, &ifr) != 0) {
      fprintf(stderr, "udp_flood: %s has no IPv4 address: %s\n", ifname, strerror(errno));
      return 1;
    }
    close(sfd);
    struct in_addr src_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname)};
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
      fprintf(stderr, "udp_flood: bind %s: %s\n", ifname, strerror(errno));
      return 1;
    }
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    len = build_frame(data, dst_mac, src_mac, src_ip, dst_ip, 40000, (uint16_t)port, payload);
  }

  static struct iovec iov[MAX_BATCH];
  static struct mmsghdr msgs[MAX_BATCH];
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = data;
    iov[i].iov_len = len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  unsigned long long sent = 0, errors = 0;
  double t0 = now_s(), end = t0 + seconds, t = t0;
  while (t < end) {
    int n = sendmmsg(fd, msgs, (unsigned)batch, 0);
    if (n > 0) sent += (unsigned long long)n;
    else errors++;
    t = now_s();
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
  double cpu = user + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.6f,\"cpuSeconds\":%.3f,\"userSeconds\":%.3f,\"mode\":\"%s\"}\n", sent,
         errors, t - t0, cpu, user, ifname ? "packet" : "udp");
  return 0;
}
