// SPDX-License-Identifier: MIT
/*
 * connect_ports - a paced TCP connection generator towards one address and a
 * range of ports, for bench/daemon.ts: each port is a different (root domain,
 * port) combination, so each connection can raise its own alert.
 *
 *   connect_ports RATE DURATION_MS IP PORT_BASE PORT_COUNT
 *
 * Opens RATE connections per second (0: as fast as it can) for DURATION_MS,
 * the i-th to PORT_BASE + (i % PORT_COUNT). Each socket is non-blocking and
 * closed right after connect() with SO_LINGER 0, so nothing waits for the
 * answer (a host with no listener answers with a reset) and no TIME_WAIT or
 * ephemeral-port pressure builds up.
 *
 * Prints once done:
 *   connect_ports pid=PID attempted=N failed=F elapsed_ms=MS first_ms=EPOCH_MS
 * then stays alive until its stdin is closed (at once with /dev/null), so a
 * sensor can still read /proc/PID for the last connections.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	long rate, duration_ms, port_base, port_count;
	uint64_t start, end, first_ms = 0, attempted = 0, failed = 0;

	if (argc != 6) {
		fprintf(stderr, "usage: connect_ports RATE DURATION_MS IP PORT_BASE PORT_COUNT\n");
		return 2;
	}
	rate = atol(argv[1]);
	duration_ms = atol(argv[2]);
	port_base = atol(argv[4]);
	port_count = atol(argv[5]);
	if (rate < 0 || duration_ms <= 0 || port_base < 1 || port_count < 1 || port_base + port_count - 1 > 65535 ||
	    inet_pton(AF_INET, argv[3], &sa.sin_addr) != 1) {
		fprintf(stderr, "connect_ports: RATE >= 0, DURATION_MS > 0, an IPv4 address, ports within 1..65535\n");
		return 2;
	}

	start = clock_ns(CLOCK_MONOTONIC);
	end = start + (uint64_t)duration_ms * 1000000ull;
	for (;;) {
		uint64_t t = clock_ns(CLOCK_MONOTONIC);
		int fd;

		if (t >= end)
			break;
		if (rate > 0) {
			/* Pace: connection i is due at start + i / rate. */
			uint64_t due = start + attempted * 1000000000ull / (uint64_t)rate;

			if (due > t) {
				struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(due - t) };

				if (due - t > 200000)
					nanosleep(&ts, NULL);
				continue;
			}
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			failed++;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		sa.sin_port = htons((uint16_t)(port_base + (long)(attempted % (uint64_t)port_count)));
		if (attempted == 0)
			first_ms = clock_ns(CLOCK_REALTIME) / 1000000ull;
		attempted++;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
			failed++;
		close(fd);
	}
	printf("connect_ports pid=%d attempted=%llu failed=%llu elapsed_ms=%llu first_ms=%llu\n", getpid(),
	       (unsigned long long)attempted, (unsigned long long)failed,
	       (unsigned long long)((clock_ns(CLOCK_MONOTONIC) - start) / 1000000ull), (unsigned long long)first_ms);
	fflush(stdout);
	{
		char buf[256];

		while (read(0, buf, sizeof(buf)) > 0)
			;
	}
	return 0;
}
