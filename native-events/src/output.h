/* SPDX-License-Identifier: MIT */
/*
 * Frame writer: buffers frames for stdout and writes them out when the buffer
 * fills or when the oldest unwritten byte is older than the flush interval.
 */
#ifndef RC_OUTPUT_H
#define RC_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rc_out {
	int fd;
	uint8_t *buf;
	size_t len;
	size_t cap;
	uint64_t oldest_ns; /* CLOCK_MONOTONIC time of the oldest buffered byte, 0 when empty */
	uint32_t seq;	    /* sequence number of the next frame */
	uint64_t frames;    /* frames handed to write(2) (or buffered for it) */
	uint64_t bytes;
	bool broken; /* the reader went away (EPIPE) or a write failed */
};

/* Returns 0, or -errno when the buffer cannot be allocated. */
int rc_out_init(struct rc_out *o, int fd, size_t cap);
void rc_out_free(struct rc_out *o);

/*
 * Appends one frame: header, then `body` (body_len bytes), then `tail`
 * (tail_len bytes, may be NULL). Flushes first when it would not fit.
 * Returns 0, or -EPIPE / -errno once the output is broken.
 */
int rc_out_frame(struct rc_out *o, uint16_t type, const void *body, uint32_t body_len, const void *tail,
		 uint32_t tail_len);

/* Writes everything buffered. Returns 0 or -errno. */
int rc_out_flush(struct rc_out *o);

/* True when buffered data is older than max_age_ns. */
bool rc_out_due(const struct rc_out *o, uint64_t now_ns, uint64_t max_age_ns);

uint64_t rc_now_ns(int clock);

#endif
