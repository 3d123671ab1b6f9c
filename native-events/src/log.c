// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

bool rc_log_verbose;

void rc_log(const char *level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line per message: fold control characters, drop a trailing newline. */
	for (p = msg; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	while (p > msg && p[-1] == ' ')
		*--p = '\0';
	if (!msg[0])
		return;
	fprintf(stderr, "rarecon-events: %s: %s\n", level, msg);
	fflush(stderr);
}
