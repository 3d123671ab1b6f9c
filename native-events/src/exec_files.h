/* SPDX-License-Identifier: MIT */
/*
 * Exec'd files as the exec opens them (fanotify FAN_OPEN_EXEC on every
 * filesystem mounted). A process that connects once and exits is often gone
 * before the helper reads its EXEC record and opens /proc/<pid>/exe; a binary
 * that deleted itself is then lost for good. The fanotify event holds the
 * file from the open on, whatever the process does next, so the EXEC record
 * finds its image here. Needs CAP_SYS_ADMIN (fanotify marks on filesystems);
 * without it the helper opens /proc/<pid>/exe as before.
 *
 * Not covered: memfds (their internal filesystem cannot be marked) and
 * filesystems mounted only in other mount namespaces (containers).
 */
#ifndef RC_EXEC_FILES_H
#define RC_EXEC_FILES_H

#include <stddef.h>
#include <stdint.h>

struct rc_exec_files;

struct rc_exec_files_stats {
	uint64_t events;     /* exec opens read */
	uint64_t taken;      /* handed to an EXEC record */
	uint64_t unmatched;  /* closed with no EXEC record of theirs (interpreters, failed execs, too old) */
	uint64_t overflows;  /* the kernel queue overflowed: some opens were not reported */
	uint32_t filesystems; /* filesystems marked */
};

/* NULL (and err says why) when fanotify cannot be used here. `cap`: pending files kept at most. */
struct rc_exec_files *rc_exec_files_open(uint32_t cap, char *err, size_t errlen);
void rc_exec_files_close(struct rc_exec_files *x);

/* The mount table's fd, to poll for POLLPRI (a mount was added or removed). */
int rc_exec_files_mounts_fd(const struct rc_exec_files *x);

/* Marks the filesystems of the mount table not marked yet; returns how many are marked in all. */
int rc_exec_files_mark_mounts(struct rc_exec_files *x);

/* Reads the exec opens the kernel queued. now_ns: CLOCK_MONOTONIC. */
void rc_exec_files_drain(struct rc_exec_files *x, uint64_t now_ns);

/*
 * The file pid exec'd, if its open was read and is (dev, ino) (kernel dev_t):
 * the caller owns the fd returned. Other files pid opened for exec before
 * (its ELF interpreter, a script's) are closed. -1 when there is none.
 */
int rc_exec_files_take(struct rc_exec_files *x, uint32_t pid, uint32_t dev, uint64_t ino, uint64_t now_ns);

/* Closes pending files older than max_age_ns. */
void rc_exec_files_sweep(struct rc_exec_files *x, uint64_t now_ns, uint64_t max_age_ns);

void rc_exec_files_stats(const struct rc_exec_files *x, struct rc_exec_files_stats *s);

#endif
