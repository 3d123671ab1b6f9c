// SPDX-License-Identifier: MIT
/*
 * connect_load - a TCP connection load generator for bench/capture.ts.
 *
 *   connect_load RATE DURATION_MS
 *
 * Listens on 127.0.0.1 (an accept thread closes what it accepts) and opens
 * RATE new connections per second to it for DURATION_MS (RATE 0: as fast as
 * it can). Each connection is closed with SO_LINGER 0 (a reset), so neither
 * side keeps TIME_WAIT state and ephemeral ports do not run out.
 *
 * Prints once done: "connect_load pid=PID port=PORT attempted=N failed=F elapsed_ms=MS"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listener;

static void *accept_loop(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(listener, NULL, NULL);

		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			return NULL;
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sa);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	pthread_t th;
	long rate, duration_ms;
	uint64_t start, end, attempted = 0, failed = 0;
	int one = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: connect_load RATE DURATION_MS\n");
		return 2;
	}
	rate = atol(argv[1]);
	duration_ms = atol(argv[2]);
	if (rate < 0 || duration_ms <= 0) {
		fprintf(stderr, "connect_load: RATE >= 0 and DURATION_MS > 0\n");
		return 2;
	}

	listener = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&sa, sizeof(sa)) || listen(listener, 4096) ||
	    getsockname(listener, (struct sockaddr *)&sa, &slen)) {
		perror("listener");
		return 1;
	}
	pthread_create(&th, NULL, accept_loop, NULL);

	start = now_ns();
	end = start + (uint64_t)duration_ms * 1000000ull;
	for (;;) {
		uint64_t t = now_ns();
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
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			failed++;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		attempted++;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			failed++;
		close(fd);
	}
	printf("connect_load pid=%d port=%u attempted=%llu failed=%llu elapsed_ms=%llu\n", getpid(),
	       ntohs(sa.sin_port), (unsigned long long)attempted, (unsigned long long)failed,
	       (unsigned long long)((now_ns() - start) / 1000000ull));
	fflush(stdout);
	return 0;
}
