// SPDX-License-Identifier: MIT
#include "exec_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images.h"

struct pending {
	int fd; /* -1: taken or closed (a hole until it reaches the head) */
	uint32_t pid;
	uint32_t dev;
	uint64_t ino;
	uint64_t at_ns;
};

struct rc_exec_files {
	int fan;
	int mounts_fd;
	/* oldest first; an exec's own file and its interpreter's both arrive, one is taken */
	struct pending *q;
	uint32_t cap, head, len;
	uint32_t *marked; /* kernel dev_t of the filesystems marked */
	uint32_t nmarked, marked_cap;
	struct rc_exec_files_stats st;
};

/* Filesystems nothing is executed from (or that cannot be marked): not marked. */
static const char *const SKIP_FS[] = {
	"proc",	      "sysfs",	    "cgroup",	   "cgroup2",	 "devpts",  "mqueue",  "bpf",
	"tracefs",    "debugfs",    "securityfs", "pstore",	 "configfs", "fusectl", "binfmt_misc",
	"autofs",     "nsfs",	    "efivarfs",   "rpc_pipefs", "selinuxfs", NULL,
};

static int skip_fs(const char *type)
{
	for (int i = 0; SKIP_FS[i]; i++)
		if (strcmp(type, SKIP_FS[i]) == 0)
			return 1;
	return 0;
}

struct rc_exec_files *rc_exec_files_open(uint32_t cap, char *err, size_t errlen)
{
	struct rc_exec_files *x;
	int fan;

	if (cap == 0) {
		snprintf(err, errlen, "no pending files allowed");
		return NULL;
	}
	/* Notification only: an exec never waits for rarecon. O_RDONLY: the file is read for its hash. */
	fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fan < 0) {
		snprintf(err, errlen, "fanotify_init: %s%s", strerror(errno),
			 errno == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (x)
		x->q = calloc(cap, sizeof(*x->q));
	if (!x || !x->q) {
		free(x);
		close(fan);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	x->fan = fan;
	x->cap = cap;
	x->mounts_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	return x;
}

void rc_exec_files_close(struct rc_exec_files *x)
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->len; i++) {
		struct pending *p = &x->q[(x->head + i) % x->cap];

		if (p->fd >= 0)
			close(p->fd);
	}
	if (x->mounts_fd >= 0)
		close(x->mounts_fd);
	close(x->fan);
	free(x->q);
	free(x->marked);
	free(x);
}

int rc_exec_files_mounts_fd(const struct rc_exec_files *x)
{
	return x->mounts_fd;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static int marked(const struct rc_exec_files *x, uint32_t dev)
{
	for (uint32_t i = 0; i < x->nmarked; i++)
		if (x->marked[i] == dev)
			return 1;
	return 0;
}

int rc_exec_files_mark_mounts(struct rc_exec_files *x)
{
	FILE *f;
	char *line = NULL;
	size_t lcap = 0;

	if (x->mounts_fd < 0)
		return (int)x->nmarked;
	/* Reading from the start also re-arms POLLPRI. */
	if (lseek(x->mounts_fd, 0, SEEK_SET) < 0)
		return (int)x->nmarked;
	f = fdopen(dup(x->mounts_fd), "r");
	if (!f)
		return (int)x->nmarked;
	while (getline(&line, &lcap, f) > 0) {
		/* id parent major:minor root mountpoint options [optional...] - fstype source superoptions */
		unsigned int maj, min;
		char *mp, *sep, *type, *save = NULL;
		uint32_t dev;

		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2)
			continue;
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		type = strtok_r(sep + 3, " ", &save);
		if (!type || skip_fs(type))
			continue;
		dev = (maj << 20) | min;
		if (marked(x, dev))
			continue;
		*sep = '\0';
		save = NULL;
		mp = strtok_r(line, " ", &save);
		for (int i = 0; mp && i < 4; i++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape(mp);
		/* A filesystem mark covers every mount of that filesystem, in every mount namespace. */
		if (fanotify_mark(x->fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC, AT_FDCWD, mp) != 0)
			continue;
		if (x->nmarked == x->marked_cap) {
			uint32_t ncap = x->marked_cap ? x->marked_cap * 2 : 32;
			uint32_t *n = realloc(x->marked, ncap * sizeof(*n));

			if (!n)
				break;
			x->marked = n;
			x->marked_cap = ncap;
		}
		x->marked[x->nmarked++] = dev;
	}
	free(line);
	fclose(f);
	x->st.filesystems = x->nmarked;
	return (int)x->nmarked;
}

static void drop_head(struct rc_exec_files *x)
{
	struct pending *p = &x->q[x->head];

	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
		x->st.unmatched++;
	}
	x->head = (x->head + 1) % x->cap;
	x->len--;
}

static void push(struct rc_exec_files *x, int fd, uint32_t pid, uint64_t now_ns)
{
	struct stat st;
	struct pending *p;

	if (fstat(fd, &st) != 0) {
		close(fd);
		return;
	}
	if (x->len == x->cap)
		drop_head(x);
	p = &x->q[(x->head + x->len) % x->cap];
	*p = (struct pending){
		.fd = fd, .pid = pid, .dev = rc_kernel_dev(st.st_dev), .ino = (uint64_t)st.st_ino, .at_ns = now_ns
	};
	x->len++;
}

void rc_exec_files_drain(struct rc_exec_files *x, uint64_t now_ns)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));

	for (;;) {
		ssize_t n = read(x->fan, buf, sizeof(buf));
		struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;

		if (n <= 0)
			return; /* EAGAIN: all read */
		for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			if (m->vers != FANOTIFY_METADATA_VERSION) {
				if (m->fd >= 0)
					close(m->fd);
				continue;
			}
			if (m->mask & FAN_Q_OVERFLOW)
				x->st.overflows++;
			if (m->fd < 0)
				continue;
			x->st.events++;
			push(x, m->fd, (uint32_t)m->pid, now_ns);
		}
	}
}

static int take_pending(struct rc_exec_files *x, uint32_t pid, uint32_t dev, uint64_t ino)
{
	uint32_t k;
	int fd;

	/* Oldest first: a pid's execs are reported in the order they opened their files. */
	for (k = 0; k < x->len; k++) {
		struct pending *p = &x->q[(x->head + k) % x->cap];

		if (p->fd >= 0 && p->pid == pid && p->dev == dev && p->ino == ino)
			break;
	}
	if (k == x->len)
		return -1;
	fd = x->q[(x->head + k) % x->cap].fd;
	x->q[(x->head + k) % x->cap].fd = -1;
	x->st.taken++;
	/* What the pid opened before it (a script, the interpreter of an earlier exec, an exec that failed) has no record coming. */
	for (uint32_t i = 0; i < k; i++) {
		struct pending *p = &x->q[(x->head + i) % x->cap];

		if (p->fd >= 0 && p->pid == pid) {
			close(p->fd);
			p->fd = -1;
			x->st.unmatched++;
		}
	}
	while (x->len && x->q[x->head].fd < 0)
		drop_head(x);
	return fd;
}

int rc_exec_files_take(struct rc_exec_files *x, uint32_t pid, uint32_t dev, uint64_t ino, uint64_t now_ns)
{
	int fd = take_pending(x, pid, dev, ino);

	/* The exec's open was queued before its EXEC record: whatever is not read yet is in the queue now. */
	if (fd < 0) {
		rc_exec_files_drain(x, now_ns);
		fd = take_pending(x, pid, dev, ino);
	}
	return fd;
}

void rc_exec_files_sweep(struct rc_exec_files *x, uint64_t now_ns, uint64_t max_age_ns)
{
	while (x->len && (x->q[x->head].fd < 0 || x->q[x->head].at_ns + max_age_ns <= now_ns))
		drop_head(x);
}

void rc_exec_files_stats(const struct rc_exec_files *x, struct rc_exec_files_stats *s)
{
	*s = x->st;
}
