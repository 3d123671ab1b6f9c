/* SPDX-License-Identifier: MIT */
/*
 * DNS response capture: an AF_PACKET socket (cooked, all interfaces of the
 * helper's network namespace) with a classic BPF filter that passes only
 * incoming IPv4/IPv6 packets from UDP (and optionally TCP) source port 53.
 * Each response becomes one DNS frame carrying the raw DNS message.
 */
#ifndef RC_DNS_CAPTURE_H
#define RC_DNS_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "output.h"

struct rc_dns_capture {
	int fd;
	bool tcp;
	uint8_t *pkt; /* receive buffer */
	uint64_t packets;      /* DNS frames written */
	uint64_t socket_drops; /* cumulative PACKET_STATISTICS tp_drops */
	uint64_t truncated;
	uint64_t bad_packets;
	uint64_t tcp_skipped;
};

/* Opens the socket. Returns 0, or -errno with a reason in err. */
int rc_dns_open(struct rc_dns_capture *c, bool tcp, char *err, size_t errlen);

/*
 * Reads up to max_packets queued packets and writes a DNS frame for each DNS
 * response. Returns 0, or a negative errno from the output (reader gone).
 */
int rc_dns_drain(struct rc_dns_capture *c, struct rc_out *out, int64_t boot_to_realtime_ns, int max_packets);

/* Folds the socket's drop counter (reset on every read) into socket_drops. */
void rc_dns_update_stats(struct rc_dns_capture *c);

void rc_dns_close(struct rc_dns_capture *c);

/* Exposed for tests of the parser: parse one network-layer packet into a DNS record. */
struct rc_dns;
/* Returns 1 when rec/payload were filled, 0 when the packet is not a DNS message, -1 when malformed. */
int rc_dns_parse_packet(const uint8_t *pkt, uint32_t len, bool captured_whole, bool tcp, struct rc_dns *rec,
			const uint8_t **payload, uint64_t *tcp_skipped);

#endif
