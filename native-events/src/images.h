/* SPDX-License-Identifier: MIT */
/*
 * Image holder: an open read-only fd of each exec'd process image, taken as
 * soon as the EXEC record is read, so the daemon can hash the file that was
 * mapped after the process exited or the file was deleted, replaced or is a
 * memfd. An fd is closed --image-linger-ms after its process exited (or
 * exec'd again); at most `cap` are held, the oldest closed first.
 */
#ifndef RC_IMAGES_H
#define RC_IMAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "../rarecon_events.h"

struct rc_images;

/* cap 0: hold nothing. NULL when out of memory. */
struct rc_images *rc_images_new(uint32_t cap, uint64_t linger_ns);
void rc_images_free(struct rc_images *im);

/*
 * Holds given_fd (the file as the exec opened it, see exec_files.h) or, when
 * it is -1, opens /proc/<pid>/exe; checks (dev, ino) against the record and
 * sets e->image_fd, or sets image_errno. Owns given_fd from here on.
 * now_ns: CLOCK_MONOTONIC.
 */
void rc_images_take(struct rc_images *im, struct rc_exec *e, uint64_t now_ns, int given_fd);

/* The thread group exited: its image is closed after the linger. */
void rc_images_exited(struct rc_images *im, uint32_t tgid, uint64_t now_ns);

/* Closes what is due. */
void rc_images_sweep(struct rc_images *im, uint64_t now_ns);

uint32_t rc_images_held(const struct rc_images *im);

/* kernel dev_t (major << 20 | minor) of a user-space st_dev */
uint32_t rc_kernel_dev(uint64_t st_dev);

#endif
