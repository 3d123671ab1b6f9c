// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../rarecon_events.h"
#include "log.h"
#include "output.h"

uint64_t rc_now_ns(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int rc_out_init(struct rc_out *o, int fd, size_t cap)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->cap = cap < RC_MAX_FRAME_SIZE ? RC_MAX_FRAME_SIZE : cap;
	o->buf = malloc(o->cap);
	return o->buf ? 0 : -ENOMEM;
}

void rc_out_free(struct rc_out *o)
{
	free(o->buf);
	o->buf = NULL;
}

int rc_out_flush(struct rc_out *o)
{
	size_t off = 0;

	if (o->broken)
		return -EPIPE;
	while (off < o->len) {
		ssize_t n = write(o->fd, o->buf + off, o->len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* stdout handed to us in non-blocking mode: wait until writable. */
			struct pollfd p = { .fd = o->fd, .events = POLLOUT };

			poll(&p, 1, 100);
			continue;
		}
		o->broken = true;
		if (n < 0 && errno != EPIPE)
			rc_warn("writing to stdout failed: %s", strerror(errno));
		return n < 0 ? -errno : -EIO;
	}
	o->len = 0;
	o->oldest_ns = 0;
	return 0;
}

int rc_out_frame(struct rc_out *o, uint16_t type, const void *body, uint32_t body_len, const void *tail,
		 uint32_t tail_len)
{
	struct rc_frame_header h;
	uint32_t total = (uint32_t)sizeof(h) + body_len + tail_len;
	int err;

	if (o->broken)
		return -EPIPE;
	if (total > RC_MAX_FRAME_SIZE) {
		/* A bug in the caller: a frame the reader would reject as garbage. */
		rc_error("frame of type %u too large (%u bytes): not written", type, total);
		return 0;
	}
	if (o->len + total > o->cap) {
		err = rc_out_flush(o);
		if (err)
			return err;
	}
	h.magic = RC_MAGIC;
	h.version = RC_PROTOCOL_VERSION;
	h.type = type;
	h.length = total;
	h.seq = o->seq++;
	if (o->len == 0)
		o->oldest_ns = rc_now_ns(CLOCK_MONOTONIC);
	memcpy(o->buf + o->len, &h, sizeof(h));
	memcpy(o->buf + o->len + sizeof(h), body, body_len);
	if (tail_len)
		memcpy(o->buf + o->len + sizeof(h) + body_len, tail, tail_len);
	o->len += total;
	o->frames++;
	o->bytes += total;
	return 0;
}

bool rc_out_due(const struct rc_out *o, uint64_t now_ns, uint64_t max_age_ns)
{
	return o->len > 0 && now_ns - o->oldest_ns >= max_age_ns;
}
