// SPDX-License-Identifier: MIT
/*
 * anon_beacon - anon_connect, then the process stays alive, the way an implant
 * keeps running after it called home.
 *
 *   anon_beacon HOLD_MS anon|anon-libc|normal IP PORT
 *
 * Runs anon_connect.c's main (same modes, same output, the anonymous region
 * stays mapped) and then sleeps HOLD_MS before exiting with its status.
 *
 * Why: a process that connects and exits within a millisecond is gone before
 * any user-space sensor reads /proc/<pid>/maps, so the injection evidence of
 * its stack cannot be checked. anon_connect does exactly that; this one lives
 * long enough for the daemon's enrichment, like real injected code does.
 */
#define main anon_connect_main
#include "anon_connect.c"
#undef main

#include <time.h>

int main(int argc, char **argv)
{
	char *end = NULL;
	long hold;
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: anon_beacon HOLD_MS anon|anon-libc|normal IP PORT\n");
		return 2;
	}
	hold = strtol(argv[1], &end, 10);
	if (end == argv[1] || *end != '\0' || hold < 0 || hold > 600000) {
		fprintf(stderr, "anon_beacon: HOLD_MS must be 0..600000\n");
		return 2;
	}
	rc = anon_connect_main(argc - 1, argv + 1);
	if (rc == 0 && hold > 0) {
		struct timespec ts = { .tv_sec = hold / 1000, .tv_nsec = (hold % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return rc;
}
