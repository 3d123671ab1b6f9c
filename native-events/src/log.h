/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: one line per message on stderr, "rarecon-events: <level>: <text>".
 * Embedded newlines are folded so every message stays on one line; the
 * TypeScript side (helper-process.ts) parses this format.
 */
#ifndef RC_LOG_H
#define RC_LOG_H

#include <stdbool.h>

extern bool rc_log_verbose;

void rc_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rc_debug(...)                                  \
	do {                                           \
		if (rc_log_verbose)                    \
			rc_log("debug", __VA_ARGS__);  \
	} while (0)
#define rc_info(...) rc_log("info", __VA_ARGS__)
#define rc_warn(...) rc_log("warn", __VA_ARGS__)
#define rc_error(...) rc_log("error", __VA_ARGS__)

#endif
