// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../rarecon_events.h"
#include "dns_capture.h"
#include "log.h"

#define RC_PKT_BUF 65536
#define RC_SNAPLEN 65535

/*
 * Classic BPF over the network header (SOCK_DGRAM packet sockets hand the
 * filter the packet without its link-layer header):
 *   drop outgoing copies (a reply sent over lo is also seen once incoming);
 *   IPv4: protocol UDP (or TCP), first fragment, source port 53;
 *   IPv6: next header UDP (or TCP) directly after the fixed header, source port 53.
 * The TCP comparisons are patched to never match when TCP capture is off.
 */
static struct sock_filter filter_template[] = {
	/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
	/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 19, 0),
	/* 2 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
	/* 3 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf0),
	/* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x40, 1, 0),
	/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x60, 8, 15),
	/* 6: IPv4 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
	/* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 1, 0),
	/* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6 /* patched */, 0, 12),
	/* 9 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),
	/* 10 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 10, 0),
	/* 11 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
	/* 12 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 0),
	/* 13 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 53, 6, 7),
	/* 14: IPv6 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6),
	/* 15 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 17, 1, 0),
	/* 16 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6 /* patched */, 0, 4),
	/* 17 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 40),
	/* 18 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 53, 0, 2),
	/* 19 */ BPF_STMT(BPF_RET | BPF_K, RC_SNAPLEN),
	/* 20 */ BPF_STMT(BPF_RET | BPF_K, RC_SNAPLEN),
	/* 21 */ BPF_STMT(BPF_RET | BPF_K, 0),
};

/*
 * Jump targets above, spelled out: from 1 (outgoing) to 21 (drop);
 * 4 -> 6 (IPv4), 5 -> 14 (IPv6) else 21; 7 -> 9 (UDP), 8 -> 9 (TCP) else 21;
 * 10 fragment -> 21; 13 port 53 -> 20 (accept) else 21; 15 -> 17, 16 -> 17 else 21;
 * 18 port 53 -> 19 (accept) else 21.
 */

int rc_dns_open(struct rc_dns_capture *c, bool tcp, char *err, size_t errlen)
{
	struct sock_filter prog[sizeof(filter_template) / sizeof(filter_template[0])];
	struct sock_fprog fprog = { .len = sizeof(prog) / sizeof(prog[0]), .filter = prog };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	int one = 1, rcvbuf = 8 << 20;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->tcp = tcp;
	memcpy(prog, filter_template, sizeof(prog));
	if (!tcp) {
		/* IP protocol numbers are 8 bits: 0x100 never matches. */
		prog[8].k = 0x100;
		prog[16].k = 0x100;
	}

	c->pkt = malloc(RC_PKT_BUF);
	if (!c->pkt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Protocol 0 receives nothing until bind(): the filter is in place first. */
	c->fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		int e = errno;

		snprintf(err, errlen, "AF_PACKET socket: %s%s", strerror(e),
			 e == EPERM ? " (CAP_NET_RAW needed)" : "");
		rc_dns_close(c);
		return -e;
	}
	if (setsockopt(c->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) < 0) {
		int e = errno;

		snprintf(err, errlen, "attaching the DNS packet filter: %s", strerror(e));
		rc_dns_close(c);
		return -e;
	}
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
#ifdef PACKET_IGNORE_OUTGOING
	setsockopt(c->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
#endif
	if (bind(c->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		int e = errno;

		snprintf(err, errlen, "binding the AF_PACKET socket: %s", strerror(e));
		rc_dns_close(c);
		return -e;
	}
	return 0;
}

void rc_dns_close(struct rc_dns_capture *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->pkt);
	c->pkt = NULL;
}

void rc_dns_update_stats(struct rc_dns_capture *c)
{
	struct tpacket_stats st;
	socklen_t len = sizeof(st);

	if (c->fd < 0)
		return;
	if (getsockopt(c->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
		c->socket_drops += st.tp_drops;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int rc_dns_parse_packet(const uint8_t *pkt, uint32_t len, bool captured_whole, bool tcp, struct rc_dns *rec,
			const uint8_t **payload, uint64_t *tcp_skipped)
{
	const uint8_t *l4;
	uint32_t l4_len, ip_len;
	uint8_t proto;
	bool more_fragments = false;
	const uint8_t *msg;
	uint32_t msg_len, wire_len;

	memset(rec, 0, sizeof(*rec));
	if (len < 1)
		return -1;
	if ((pkt[0] >> 4) == 4) {
		uint32_t ihl = (uint32_t)(pkt[0] & 0x0f) * 4;

		if (len < 20 || ihl < 20 || ihl > len)
			return -1;
		ip_len = be16(pkt + 2);
		if (ip_len < ihl)
			return -1;
		if (ip_len < len)
			len = ip_len; /* Ethernet padding */
		else if (ip_len > len)
			captured_whole = false;
		if (be16(pkt + 6) & 0x1fff)
			return 0; /* not the first fragment (the filter drops these) */
		more_fragments = (be16(pkt + 6) & 0x2000) != 0;
		proto = pkt[9];
		rec->family = RC_AF_INET;
		memcpy(rec->server_addr, pkt + 12, 4);
		memcpy(rec->client_addr, pkt + 16, 4);
		l4 = pkt + ihl;
		l4_len = len - ihl;
	} else if ((pkt[0] >> 4) == 6) {
		if (len < 40)
			return -1;
		ip_len = 40u + be16(pkt + 4);
		if (ip_len < len)
			len = ip_len;
		else if (ip_len > len)
			captured_whole = false;
		proto = pkt[6];
		rec->family = RC_AF_INET6;
		memcpy(rec->server_addr, pkt + 8, 16);
		memcpy(rec->client_addr, pkt + 24, 16);
		l4 = pkt + 40;
		l4_len = len - 40;
	} else {
		return -1;
	}

	if (proto == RC_PROTO_UDP) {
		uint32_t ulen;

		if (l4_len < 8)
			return -1;
		ulen = be16(l4 + 4);
		if (ulen < 8)
			return -1;
		rec->server_port = be16(l4);
		rec->client_port = be16(l4 + 2);
		msg = l4 + 8;
		wire_len = ulen - 8;
		msg_len = l4_len - 8 < wire_len ? l4_len - 8 : wire_len;
		if (msg_len < wire_len || more_fragments)
			captured_whole = false;
	} else if (proto == RC_PROTO_TCP && tcp) {
		uint32_t doff, seg;

		if (l4_len < 20)
			return -1;
		doff = (uint32_t)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > l4_len)
			return -1;
		rec->server_port = be16(l4);
		rec->client_port = be16(l4 + 2);
		seg = l4_len - doff;
		if (seg == 0)
			return 0; /* pure ACK / SYN / FIN */
		/* Only a segment that holds exactly one whole length-prefixed message. */
		if (seg < 2 + 12 || be16(l4 + doff) != seg - 2 || !captured_whole) {
			(*tcp_skipped)++;
			return 0;
		}
		msg = l4 + doff + 2;
		msg_len = seg - 2;
		wire_len = msg_len;
	} else {
		return 0;
	}
	if (rec->server_port != 53)
		return 0;

	rec->transport = proto;
	rec->orig_len = wire_len > 0xffff ? 0xffff : (uint16_t)wire_len;
	if (msg_len > RC_DNS_MAX_PAYLOAD) {
		msg_len = RC_DNS_MAX_PAYLOAD;
		captured_whole = false;
	}
	if (!captured_whole)
		rec->flags |= RC_DNS_F_TRUNCATED;
	rec->payload_len = (uint16_t)msg_len;
	*payload = msg;
	return 1;
}

int rc_dns_drain(struct rc_dns_capture *c, struct rc_out *out, int64_t boot_to_realtime_ns, int max_packets)
{
	for (int i = 0; i < max_packets; i++) {
		struct sockaddr_ll from;
		char cbuf[CMSG_SPACE(sizeof(struct timespec))];
		struct iovec iov = { .iov_base = c->pkt, .iov_len = RC_PKT_BUF };
		struct msghdr mh = {
			.msg_name = &from,
			.msg_namelen = sizeof(from),
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf,
			.msg_controllen = sizeof(cbuf),
		};
		struct rc_dns rec;
		const uint8_t *payload = NULL;
		uint64_t realtime_ns = 0;
		struct cmsghdr *cm;
		ssize_t n;
		int r;

		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				rc_warn("reading the DNS capture socket: %s", strerror(errno));
			return 0;
		}
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;

				memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
				realtime_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
			}
		}
		if (!realtime_ns)
			realtime_ns = rc_now_ns(CLOCK_REALTIME);

		r = rc_dns_parse_packet(c->pkt, n > RC_PKT_BUF ? RC_PKT_BUF : (uint32_t)n, n <= RC_PKT_BUF, c->tcp,
					&rec, &payload, &c->tcp_skipped);
		if (r < 0) {
			c->bad_packets++;
			continue;
		}
		if (r == 0)
			continue;
		rec.realtime_ns = realtime_ns;
		rec.boot_ns = realtime_ns - (uint64_t)boot_to_realtime_ns;
		rec.ifindex = (uint32_t)from.sll_ifindex;
		if (rec.flags & RC_DNS_F_TRUNCATED)
			c->truncated++;
		c->packets++;
		r = rc_out_frame(out, RC_REC_DNS, &rec, sizeof(rec), payload, rec.payload_len);
		if (r)
			return r;
	}
	return 0;
}
