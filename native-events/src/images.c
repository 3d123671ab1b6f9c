// SPDX-License-Identifier: MIT
#include "images.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct slot {
	int fd;		   /* -1: free */
	uint32_t tgid;
	uint64_t gen;	   /* order of taking, for eviction */
	uint64_t due_ns;   /* close at; 0 while the process lives */
};

struct rc_images {
	uint32_t cap;
	uint64_t linger_ns;
	uint64_t next_gen;
	uint32_t held;
	struct slot *slots;
	/* tgid -> slot index + 1 (0 empty), linear probing, 2*cap rounded to a power of two */
	uint32_t *index_keys;
	uint32_t *index_vals;
	uint32_t index_mask;
	uint32_t *free_list;
	uint32_t nfree;
	/* slots waiting for their close, in due order (linger is constant) */
	uint32_t *due_q;
	uint64_t *due_gen;
	uint32_t due_head, due_len;
};

uint32_t rc_kernel_dev(uint64_t st_dev)
{
	return (major(st_dev) << 20) | minor(st_dev);
}

struct rc_images *rc_images_new(uint32_t cap, uint64_t linger_ns)
{
	struct rc_images *im = calloc(1, sizeof(*im));
	uint32_t isz = 16;

	if (!im)
		return NULL;
	im->cap = cap;
	im->linger_ns = linger_ns;
	if (cap == 0)
		return im;
	while (isz < 2 * cap)
		isz <<= 1;
	im->index_mask = isz - 1;
	im->slots = calloc(cap, sizeof(*im->slots));
	im->index_keys = calloc(isz, sizeof(uint32_t));
	im->index_vals = calloc(isz, sizeof(uint32_t));
	im->free_list = calloc(cap, sizeof(uint32_t));
	im->due_q = calloc(cap, sizeof(uint32_t));
	im->due_gen = calloc(cap, sizeof(uint64_t));
	if (!im->slots || !im->index_keys || !im->index_vals || !im->free_list || !im->due_q || !im->due_gen) {
		rc_images_free(im);
		return NULL;
	}
	for (uint32_t i = 0; i < cap; i++) {
		im->slots[i].fd = -1;
		im->free_list[i] = cap - 1 - i;
	}
	im->nfree = cap;
	return im;
}

void rc_images_free(struct rc_images *im)
{
	if (!im)
		return;
	for (uint32_t i = 0; im->slots && i < im->cap; i++)
		if (im->slots[i].fd >= 0)
			close(im->slots[i].fd);
	free(im->slots);
	free(im->index_keys);
	free(im->index_vals);
	free(im->free_list);
	free(im->due_q);
	free(im->due_gen);
	free(im);
}

static uint32_t hash_tgid(uint32_t t)
{
	return (t * 2654435761u);
}

/* Position of tgid in the index, or of the empty cell where it would go. */
static uint32_t index_pos(const struct rc_images *im, uint32_t tgid)
{
	uint32_t i = hash_tgid(tgid) & im->index_mask;

	while (im->index_vals[i] && im->index_keys[i] != tgid)
		i = (i + 1) & im->index_mask;
	return i;
}

/* Remove the entry at i, shifting later ones of the run back (no tombstones). */
static void index_delete_at(struct rc_images *im, uint32_t i)
{
	uint32_t j = i;

	im->index_vals[i] = 0;
	for (;;) {
		uint32_t home;

		j = (j + 1) & im->index_mask;
		if (!im->index_vals[j])
			return;
		home = hash_tgid(im->index_keys[j]) & im->index_mask;
		/* Can the entry at j move to the hole at i? Only if its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			im->index_keys[i] = im->index_keys[j];
			im->index_vals[i] = im->index_vals[j];
			im->index_vals[j] = 0;
			i = j;
		}
	}
}

static void close_slot(struct rc_images *im, uint32_t s)
{
	struct slot *sl = &im->slots[s];
	uint32_t pos;

	if (sl->fd < 0)
		return;
	close(sl->fd);
	sl->fd = -1;
	pos = index_pos(im, sl->tgid);
	if (im->index_vals[pos] == s + 1)
		index_delete_at(im, pos);
	im->free_list[im->nfree++] = s;
	im->held--;
}

/* Schedule a slot's close after the linger (it leaves the index: a new exec of the tgid takes its place). */
static void retire(struct rc_images *im, uint32_t s, uint64_t now_ns)
{
	struct slot *sl = &im->slots[s];
	uint32_t pos = index_pos(im, sl->tgid);

	if (im->index_vals[pos] == s + 1)
		index_delete_at(im, pos);
	if (sl->due_ns)
		return;
	sl->due_ns = now_ns + im->linger_ns;
	if (sl->due_ns == 0)
		sl->due_ns = 1;
	if (im->due_len < im->cap) {
		uint32_t at = (im->due_head + im->due_len) % im->cap;

		im->due_q[at] = s;
		im->due_gen[at] = sl->gen;
		im->due_len++;
	}
}

void rc_images_sweep(struct rc_images *im, uint64_t now_ns)
{
	while (im->due_len) {
		uint32_t s = im->due_q[im->due_head];
		struct slot *sl = &im->slots[s];

		if (sl->fd >= 0 && sl->gen == im->due_gen[im->due_head]) {
			if (sl->due_ns > now_ns)
				return;
			/* close_slot would look the tgid up again: the slot is already out of the index */
			close(sl->fd);
			sl->fd = -1;
			im->free_list[im->nfree++] = s;
			im->held--;
		}
		im->due_head = (im->due_head + 1) % im->cap;
		im->due_len--;
	}
}

/* Full: close the oldest held image (a process still running can be read from /proc/<pid>/exe). */
static void evict_oldest(struct rc_images *im)
{
	uint32_t best = UINT32_MAX;

	for (uint32_t i = 0; i < im->cap; i++)
		if (im->slots[i].fd >= 0 && (best == UINT32_MAX || im->slots[i].gen < im->slots[best].gen))
			best = i;
	if (best != UINT32_MAX)
		close_slot(im, best);
}

void rc_images_take(struct rc_images *im, struct rc_exec *e, uint64_t now_ns, int given_fd)
{
	char path[64];
	struct stat st;
	uint32_t pos, s;
	int fd = given_fd;

	e->image_fd = -1;
	e->image_errno = 0;
	if (im->cap == 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%u/exe", e->pid);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	}
	if (fd < 0) {
		e->image_errno = errno == ENOENT ? ESRCH : errno;
		return;
	}
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != e->exe_ino || rc_kernel_dev(st.st_dev) != e->exe_dev) {
		/* The pid exec'd again, or was reused: not this record's image. */
		close(fd);
		e->image_errno = ESTALE;
		return;
	}
	pos = index_pos(im, e->pid);
	if (im->index_vals[pos]) {
		retire(im, im->index_vals[pos] - 1, now_ns);
		pos = index_pos(im, e->pid);
	}
	if (im->nfree == 0) {
		evict_oldest(im);
		pos = index_pos(im, e->pid);
	}
	if (im->nfree == 0) {
		close(fd);
		e->image_errno = EMFILE;
		return;
	}
	s = im->free_list[--im->nfree];
	im->slots[s] = (struct slot){ .fd = fd, .tgid = e->pid, .gen = ++im->next_gen, .due_ns = 0 };
	im->index_keys[pos] = e->pid;
	im->index_vals[pos] = s + 1;
	im->held++;
	e->image_fd = fd;
}

void rc_images_exited(struct rc_images *im, uint32_t tgid, uint64_t now_ns)
{
	uint32_t pos;

	if (im->cap == 0)
		return;
	pos = index_pos(im, tgid);
	if (im->index_vals[pos])
		retire(im, im->index_vals[pos] - 1, now_ns);
}

uint32_t rc_images_held(const struct rc_images *im)
{
	return im->held;
}
