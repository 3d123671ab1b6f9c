// SPDX-License-Identifier: MIT
/*
 * rarecon-events - loads the rarecon eBPF programs, captures DNS responses
 * and streams both to stdout as frames of the wire contract
 * (../rarecon_events.h). Diagnostics go to stderr, one line each.
 *
 * Exit status: 0 clean stop (SIGTERM, SIGINT, stdout closed),
 *              1 bad usage,
 *              2 cannot run on this host (no BTF, no privilege, load failed),
 *              3 failure while running.
 */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../rarecon_events.h"
#include "dns_capture.h"
#include "exec_files.h"
#include "images.h"
#include "log.h"
#include "output.h"
#include "rarecon_events.skel.h"

#ifndef RC_HELPER_VERSION
#define RC_HELPER_VERSION "dev"
#endif

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire contract is little-endian");
_Static_assert(sizeof(struct rc_frame_header) == 16, "frame header size");
_Static_assert(sizeof(struct rc_hello) == RC_HELLO_SIZE, "HELLO size");
_Static_assert(sizeof(struct rc_connect) == RC_CONNECT_SIZE, "CONNECT size");
_Static_assert(sizeof(struct rc_dns) == RC_DNS_HEAD_SIZE, "DNS head size");
_Static_assert(sizeof(struct rc_loss) == RC_LOSS_SIZE, "LOSS size");
_Static_assert(sizeof(struct rc_exit) == RC_EXIT_SIZE, "EXIT size");
_Static_assert(sizeof(struct rc_exec) == RC_EXEC_HEAD_SIZE, "EXEC head size");

#define EXIT_USAGE 1
#define EXIT_CANNOT_RUN 2
#define EXIT_RUNTIME 3

#define VMLINUX_BTF "/sys/kernel/btf/vmlinux"
#define OUT_BUFFER_BYTES (256u << 10)
#define DNS_PACKETS_PER_ROUND 256
/* Exec'd files read from fanotify and not yet matched to their EXEC record (interpreters among them). */
#define EXEC_FILES_PENDING 1024u
/* An exec open whose EXEC record has not come in this long is let go (a failed exec, an interpreter). */
#define EXEC_FILES_MAX_AGE_NS (5ull * 1000000000ull)

struct options {
	bool dns;
	bool dns_tcp;
	bool check_only;
	uint32_t udp_dedup_ms;
	uint32_t stack_frames;
	uint32_t ringbuf_kb;
	uint32_t stats_interval_ms;
	uint32_t flush_ms;
	uint32_t image_fds;
	uint32_t image_linger_ms;
};

/* Everything the ring buffer callback needs. */
struct state {
	struct rc_out out;
	int64_t boot_to_realtime_ns;
	struct rc_images *images;
	/* the exec'd files as the execs open them; NULL without fanotify (see exec_files.h) */
	struct rc_exec_files *exec_files;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rarecon-events [options]\n"
		"  --no-dns               do not capture DNS responses\n"
		"  --no-dns-tcp           capture DNS over UDP only\n"
		"  --udp-dedup-ms N       report a UDP flow (pid, destination) at most once per N ms\n"
		"                         (default 60000, 0 reports every datagram)\n"
		"  --stack-frames N       user stack frames per CONNECT, 0..%d (default %d)\n"
		"  --ringbuf-kb N         ring buffer size, a power of two >= page size (default 4096)\n"
		"  --stats-interval-ms N  LOSS frame period (default 1000)\n"
		"  --flush-ms N           longest time a frame waits in the output buffer, 1..50 (default 2)\n"
		"  --image-fds N          exec'd images held open for the daemon to hash, 0..65536 (default 4096)\n"
		"  --image-linger-ms N    how long an image is held after its process exited (default 30000)\n"
		"  --check                load and attach, then exit 0 (nothing written to stdout)\n"
		"  --verbose              debug diagnostics, libbpf's included\n"
		"  --version\n",
		RC_MAX_STACK_FRAMES, RC_MAX_STACK_FRAMES);
}

static bool parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return false;
	*out = (uint32_t)v;
	return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { O_NO_DNS = 256, O_NO_DNS_TCP, O_DEDUP, O_FRAMES, O_RINGBUF, O_STATS, O_FLUSH, O_IMAGE_FDS, O_IMAGE_LINGER, O_CHECK, O_VERBOSE,
	       O_VERSION, O_HELP };
	static const struct option longopts[] = {
		{ "no-dns", no_argument, NULL, O_NO_DNS },
		{ "no-dns-tcp", no_argument, NULL, O_NO_DNS_TCP },
		{ "udp-dedup-ms", required_argument, NULL, O_DEDUP },
		{ "stack-frames", required_argument, NULL, O_FRAMES },
		{ "ringbuf-kb", required_argument, NULL, O_RINGBUF },
		{ "stats-interval-ms", required_argument, NULL, O_STATS },
		{ "flush-ms", required_argument, NULL, O_FLUSH },
		{ "image-fds", required_argument, NULL, O_IMAGE_FDS },
		{ "image-linger-ms", required_argument, NULL, O_IMAGE_LINGER },
		{ "check", no_argument, NULL, O_CHECK },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	long page = sysconf(_SC_PAGESIZE);
	int c;

	*o = (struct options){
		.dns = true,
		.dns_tcp = true,
		.udp_dedup_ms = 60000,
		.stack_frames = RC_MAX_STACK_FRAMES,
		.ringbuf_kb = 4096,
		.stats_interval_ms = 1000,
		.flush_ms = 2,
		.image_fds = 4096,
		.image_linger_ms = 30000,
	};
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_NO_DNS:
			o->dns = false;
			break;
		case O_NO_DNS_TCP:
			o->dns_tcp = false;
			break;
		case O_DEDUP:
			if (!parse_u32(optarg, 24u * 3600 * 1000, &o->udp_dedup_ms)) {
				rc_error("--udp-dedup-ms wants milliseconds between 0 and 86400000, got '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_FRAMES:
			if (!parse_u32(optarg, RC_MAX_STACK_FRAMES, &o->stack_frames)) {
				rc_error("--stack-frames wants 0..%d, got '%s'", RC_MAX_STACK_FRAMES, optarg);
				return EXIT_USAGE;
			}
			break;
		case O_RINGBUF:
			if (!parse_u32(optarg, 1u << 20, &o->ringbuf_kb) || o->ringbuf_kb == 0 ||
			    (o->ringbuf_kb & (o->ringbuf_kb - 1)) || (long)o->ringbuf_kb * 1024 < page) {
				rc_error("--ringbuf-kb wants a power of two between %ld and 1048576, got '%s'",
					 page / 1024, optarg);
				return EXIT_USAGE;
			}
			break;
		case O_STATS:
			if (!parse_u32(optarg, 3600u * 1000, &o->stats_interval_ms) || o->stats_interval_ms < 10) {
				rc_error("--stats-interval-ms wants 10..3600000, got '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_FLUSH:
			if (!parse_u32(optarg, 50, &o->flush_ms) || o->flush_ms == 0) {
				rc_error("--flush-ms wants 1..50, got '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_IMAGE_FDS:
			if (!parse_u32(optarg, 65536, &o->image_fds)) {
				rc_error("--image-fds wants 0..65536, got '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_IMAGE_LINGER:
			if (!parse_u32(optarg, 3600u * 1000, &o->image_linger_ms)) {
				rc_error("--image-linger-ms wants 0..3600000, got '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_CHECK:
			o->check_only = true;
			break;
		case O_VERBOSE:
			rc_log_verbose = true;
			break;
		case O_VERSION:
			printf("rarecon-events %s (protocol %d)\n", RC_HELPER_VERSION, RC_PROTOCOL_VERSION);
			exit(0);
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			rc_error("unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		rc_error("unexpected argument '%s' (see --help)", argv[optind]);
		return EXIT_USAGE;
	}
	return 0;
}

/* libbpf messages, one diagnostic line per line of text. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[4096];
	char *line, *save = NULL;

	if (level == LIBBPF_DEBUG && !rc_log_verbose)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		rc_log(level == LIBBPF_WARN ? "warn" : "debug", "%s%s", strncmp(line, "libbpf: ", 8) ? "libbpf: " : "", line);
	return 0;
}

/* CLOCK_REALTIME - CLOCK_BOOTTIME, from the tightest of a few samples. */
static int64_t boot_to_realtime_ns(void)
{
	int64_t best = 0;
	uint64_t best_width = UINT64_MAX;

	for (int i = 0; i < 3; i++) {
		uint64_t b0 = rc_now_ns(CLOCK_BOOTTIME);
		uint64_t r = rc_now_ns(CLOCK_REALTIME);
		uint64_t b1 = rc_now_ns(CLOCK_BOOTTIME);

		if (b1 - b0 < best_width) {
			best_width = b1 - b0;
			best = (int64_t)r - (int64_t)(b0 + (b1 - b0) / 2);
		}
	}
	return best;
}

/* Mount a pseudo file system at `dir` unless one of that type is there already. */
static void ensure_mounted(const char *dir, const char *type, long magic)
{
	struct statfs st;

	if (statfs(dir, &st) == 0 && (long)st.f_type == magic)
		return;
	if (mount(type, dir, type, 0, NULL) == 0)
		rc_info("mounted %s at %s", type, dir);
	else
		rc_debug("could not mount %s at %s: %s", type, dir, strerror(errno));
}

/* Effective capability bit from /proc/self/status. */
static bool has_cap(int cap)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long eff = 0;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> cap) & 1;
}

static bool btf_has_enum_value(const struct btf *btf, const char *enum_name, const char *value)
{
	int id = btf ? btf__find_by_name_kind(btf, enum_name, BTF_KIND_ENUM) : -1;
	const struct btf_type *t;
	const struct btf_enum *e;

	if (id < 0)
		return false;
	t = btf__type_by_id(btf, id);
	e = btf_enum(t);
	for (int i = 0; i < btf_vlen(t); i++)
		if (strcmp(btf__name_by_offset(btf, e[i].name_off), value) == 0)
			return true;
	return false;
}

/* Ring buffer callback: one kernel record -> one frame. */
static int on_kernel_record(void *ctx, void *data, size_t size)
{
	struct state *st = ctx;
	const struct rc_kernel_header *h = data;

	if (size < sizeof(*h))
		return 0;
	if (h->type == RC_REC_CONNECT && size >= sizeof(struct rc_kernel_connect)) {
		struct rc_connect e;

		memcpy(&e, &((const struct rc_kernel_connect *)data)->body, sizeof(e));
		e.realtime_ns = e.boot_ns + (uint64_t)st->boot_to_realtime_ns;
		return rc_out_frame(&st->out, RC_REC_CONNECT, &e, sizeof(e), NULL, 0);
	}
	if (h->type == RC_REC_EXIT && size >= sizeof(struct rc_kernel_exit)) {
		struct rc_exit e;

		memcpy(&e, &((const struct rc_kernel_exit *)data)->body, sizeof(e));
		e.realtime_ns = e.boot_ns + (uint64_t)st->boot_to_realtime_ns;
		if (st->images)
			rc_images_exited(st->images, e.pid, rc_now_ns(CLOCK_MONOTONIC));
		return rc_out_frame(&st->out, RC_REC_EXIT, &e, sizeof(e), NULL, 0);
	}
	if (h->type == RC_REC_EXEC && size >= sizeof(struct rc_kernel_exec)) {
		const struct rc_kernel_exec *k = data;
		struct rc_exec e;
		char tail[RC_EXEC_PATH_MAX + RC_EXEC_ARGS_MAX];
		uint32_t plen = k->body.path_len, alen = k->body.args_len;

		memcpy(&e, &k->body, sizeof(e));
		if (plen > RC_EXEC_PATH_MAX || k->path_off + plen > sizeof(k->path))
			plen = 0;
		if (alen > RC_EXEC_ARGS_MAX)
			alen = 0;
		e.path_len = (uint16_t)plen;
		e.args_len = (uint16_t)alen;
		/* First of all: take hold of the image, as the exec opened it or while the process may still be there. */
		if (st->images) {
			uint64_t now = rc_now_ns(CLOCK_MONOTONIC);
			int fd = st->exec_files ? rc_exec_files_take(st->exec_files, e.pid, e.exe_dev, e.exe_ino, now) : -1;

			rc_images_take(st->images, &e, now, fd);
		}
		e.realtime_ns = e.boot_ns + (uint64_t)st->boot_to_realtime_ns;
		memcpy(tail, k->path + k->path_off, plen);
		memcpy(tail + plen, k->args, alen);
		return rc_out_frame(&st->out, RC_REC_EXEC, &e, sizeof(e), tail, plen + alen);
	}
	rc_warn("unexpected ring buffer record type %u (%zu bytes) skipped", h->type, size);
	return 0;
}

static void read_counters(struct rarecon_events_bpf *skel, uint64_t totals[RC_CNT__COUNT])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;

	memset(totals, 0, sizeof(uint64_t) * RC_CNT__COUNT);
	if (ncpu <= 0)
		return;
	vals = calloc((size_t)ncpu, sizeof(uint64_t));
	if (!vals)
		return;
	for (uint32_t k = 0; k < RC_CNT__COUNT; k++) {
		if (bpf_map__lookup_elem(skel->maps.counters, &k, sizeof(k), vals, sizeof(uint64_t) * (size_t)ncpu,
					 0) == 0)
			for (int c = 0; c < ncpu; c++)
				totals[k] += vals[c];
	}
	free(vals);
}

static int write_loss(struct state *st, struct rarecon_events_bpf *skel, struct rc_dns_capture *dns)
{
	uint64_t k[RC_CNT__COUNT];
	struct rc_loss l = { 0 };

	read_counters(skel, k);
	if (dns && dns->fd >= 0)
		rc_dns_update_stats(dns);
	l.realtime_ns = rc_now_ns(CLOCK_REALTIME);
	l.kernel_events = k[RC_CNT_EVENTS];
	l.ringbuf_drops = k[RC_CNT_RINGBUF_DROPS];
	l.udp_deduped = k[RC_CNT_UDP_DEDUPED];
	l.stack_errors = k[RC_CNT_STACK_ERRORS];
	if (dns) {
		l.dns_packets = dns->packets;
		l.dns_socket_drops = dns->socket_drops;
		l.dns_truncated = dns->truncated;
		l.dns_bad_packets = dns->bad_packets;
		l.dns_tcp_skipped = dns->tcp_skipped;
	}
	l.frames_written = st->out.frames;
	l.bytes_written = st->out.bytes;
	return rc_out_frame(&st->out, RC_REC_LOSS, &l, sizeof(l), NULL, 0);
}

/*
 * Processes already running: one EXEC record each (RC_EXEC_F_SEEDED), from
 * /proc, with the image held like an exec'd one; their exits are reported.
 */
static int seed_running(struct state *st, struct rarecon_events_bpf *skel, bool exec_flag)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t now_boot = rc_now_ns(CLOCK_BOOTTIME);
	uint32_t self = (uint32_t)getpid();
	int seeded = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[64], buf[1024], link[RC_EXEC_PATH_MAX + 16];
		struct rc_exec e = { 0 };
		struct stat sst;
		unsigned long long start_ticks = 0;
		unsigned int ppid = 0;
		char *p;
		ssize_t n;
		int fd;
		uint8_t one = 1;
		uint32_t pid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid = (uint32_t)strtoul(de->d_name, NULL, 10);
		if (pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%u/exe", pid);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue; /* a kernel thread, or gone */
		link[n] = 0;
		snprintf(path, sizeof(path), "/proc/%u/stat", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		/* comm may hold spaces and parentheses: fields start after the last ')'. */
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 2, "%*c %u %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
				 &ppid, &start_ticks) != 2)
			continue;
		{
			char *c = strchr(buf, '(');
			size_t cl = c ? (size_t)(p - c - 1) : 0;

			if (cl >= sizeof(e.comm))
				cl = sizeof(e.comm) - 1;
			if (c)
				memcpy(e.comm, c + 1, cl);
		}
		snprintf(path, sizeof(path), "/proc/%u/exe", pid);
		if (stat(path, &sst) != 0)
			continue;
		e.boot_ns = now_boot;
		e.proc_start_boot_ns = start_ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
		e.pid = pid;
		e.old_tid = pid;
		e.ppid = ppid;
		e.exe_dev = rc_kernel_dev(sst.st_dev);
		e.exe_ino = sst.st_ino;
		e.ctime_ns = (int64_t)sst.st_ctim.tv_sec * 1000000000ll + sst.st_ctim.tv_nsec;
		e.nlink = (uint32_t)sst.st_nlink;
		e.flags = RC_EXEC_F_SEEDED;
		{
			size_t l = strlen(link);
			const char *suffix = " (deleted)";

			if (l > 10 && strcmp(link + l - 10, suffix) == 0 && sst.st_nlink == 0) {
				link[l - 10] = 0;
				e.flags |= strncmp(link, "/memfd:", 7) == 0 ? RC_EXEC_F_MEMFD : RC_EXEC_F_DELETED;
			}
		}
		snprintf(path, sizeof(path), "/proc/%u/status", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			buf[n > 0 ? n : 0] = 0;
			p = strstr(buf, "\nUid:");
			if (p)
				e.uid = (uint32_t)strtoul(p + 5, NULL, 10);
			p = strstr(buf, "\nGid:");
			if (p)
				e.gid = (uint32_t)strtoul(p + 5, NULL, 10);
		}
		e.path_len = (uint16_t)strnlen(link, RC_EXEC_PATH_MAX);
		if (st->images)
			rc_images_take(st->images, &e, rc_now_ns(CLOCK_MONOTONIC), -1);
		else
			e.image_fd = -1;
		e.realtime_ns = e.boot_ns + (uint64_t)st->boot_to_realtime_ns;
		if (exec_flag)
			bpf_map__update_elem(skel->maps.reported_tgids, &pid, sizeof(pid), &one, sizeof(one), BPF_ANY);
		if (rc_out_frame(&st->out, RC_REC_EXEC, &e, sizeof(e), link, e.path_len)) {
			closedir(d);
			return -1;
		}
		seeded++;
	}
	closedir(d);
	return seeded;
}

struct attach_target {
	struct bpf_program *prog;
	const char *tp_btf;	/* BTF tracepoint name (checked in kernel BTF), or NULL */
	const char *tracepoint; /* "category/name" of a tracefs tracepoint, or NULL */
	uint32_t flag;
	bool required;
};

/* Is the program's hook present on this kernel? */
static bool target_available(const struct attach_target *t, const struct btf *btf)
{
	char path[256];

	if (t->tp_btf) {
		snprintf(path, sizeof(path), "btf_trace_%s", t->tp_btf);
		return btf && btf__find_by_name_kind(btf, path, BTF_KIND_TYPEDEF) >= 0;
	}
	snprintf(path, sizeof(path), "/sys/kernel/tracing/events/%s/id", t->tracepoint);
	if (access(path, R_OK) == 0)
		return true;
	snprintf(path, sizeof(path), "/sys/kernel/debug/tracing/events/%s/id", t->tracepoint);
	return access(path, R_OK) == 0;
}

int main(int argc, char **argv)
{
	struct options opt;
	struct rarecon_events_bpf *skel = NULL;
	struct ring_buffer *rb = NULL;
	struct rc_dns_capture dns = { .fd = -1 };
	struct state st = { 0 };
	struct btf *vmlinux = NULL;
	struct bpf_link *links[12] = { 0 };
	struct rc_hello hello = { 0 };
	struct utsname uts;
	uint32_t flags = 0;
	sigset_t mask;
	int sfd = -1, err, status = 0, nlinks = 0;
	bool stop = false, reader_gone = false;

	setvbuf(stderr, NULL, _IOLBF, 0);
	err = parse_options(argc, argv, &opt);
	if (err)
		return err;

	/* Signals arrive through a signalfd; a closed stdout shows as EPIPE, not SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	if (access(VMLINUX_BTF, R_OK) != 0) {
		rc_error("kernel BTF missing at %s: this kernel needs CONFIG_DEBUG_INFO_BTF=y", VMLINUX_BTF);
		return EXIT_CANNOT_RUN;
	}
	if (geteuid() != 0 && !(has_cap(21 /* CAP_SYS_ADMIN */) || (has_cap(39 /* CAP_BPF */) &&
								    has_cap(38 /* CAP_PERFMON */)))) {
		rc_error("not permitted to load eBPF programs: run as root, or with CAP_BPF and CAP_PERFMON "
			 "(and CAP_NET_RAW for DNS capture)");
		return EXIT_CANNOT_RUN;
	}

	ensure_mounted("/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC);
	ensure_mounted("/sys/fs/bpf", "bpf", BPF_FS_MAGIC);
	{
		/* Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones to the memory cgroup. */
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

		if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
			getrlimit(RLIMIT_MEMLOCK, &rl);
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
				rc_debug("could not raise RLIMIT_MEMLOCK: %s", strerror(errno));
		}
	}
	libbpf_set_print(libbpf_print);

	vmlinux = btf__load_vmlinux_btf();
	if (!vmlinux) {
		rc_error("cannot read kernel BTF from %s: %s", VMLINUX_BTF, strerror(errno));
		return EXIT_CANNOT_RUN;
	}

	skel = rarecon_events_bpf__open();
	if (!skel) {
		rc_error("cannot open the BPF object: %s", strerror(errno));
		status = EXIT_CANNOT_RUN;
		goto out;
	}
	skel->rodata->cfg_stack_frames = opt.stack_frames;
	skel->rodata->cfg_udp_dedup_ns = (uint64_t)opt.udp_dedup_ms * 1000000ull;
	skel->rodata->cfg_stack_scan = btf_has_enum_value(vmlinux, "bpf_func_id", "BPF_FUNC_task_pt_regs");
	skel->rodata->cfg_exit_events = true;
	skel->rodata->cfg_exec_events = true;
	skel->rodata->cfg_find_vma = btf_has_enum_value(vmlinux, "bpf_func_id", "BPF_FUNC_find_vma");
	if (skel->rodata->cfg_find_vma)
		flags |= RC_HELLO_F_FIND_VMA;
	else
		rc_warn("bpf_find_vma missing (kernel before 5.17): stack frames are judged by the daemon from /proc/<pid>/maps");
	if (skel->rodata->cfg_stack_scan)
		flags |= RC_HELLO_F_STACK_SCAN;
	err = bpf_map__set_max_entries(skel->maps.events, opt.ringbuf_kb * 1024u);
	if (err) {
		rc_error("cannot size the ring buffer to %u KiB: %s", opt.ringbuf_kb, strerror(-err));
		status = EXIT_USAGE;
		goto out;
	}

	const uint32_t udp = RC_HELLO_F_UDP4 | RC_HELLO_F_UDP6;
	struct attach_target targets[] = {
		{ skel->progs.inet_sock_set_state, "inet_sock_set_state", NULL, RC_HELLO_F_TCP4 | RC_HELLO_F_TCP6,
		  true },
		{ skel->progs.sys_enter_sendto, NULL, "syscalls/sys_enter_sendto", udp, false },
		{ skel->progs.sys_enter_sendmsg, NULL, "syscalls/sys_enter_sendmsg", udp, false },
		{ skel->progs.sys_enter_sendmmsg, NULL, "syscalls/sys_enter_sendmmsg", udp, false },
		{ skel->progs.sys_enter_connect, NULL, "syscalls/sys_enter_connect", udp, false },
		{ skel->progs.sys_exit_connect, NULL, "syscalls/sys_exit_connect", udp, false },
		{ skel->progs.sched_process_exit, "sched_process_exit", NULL, RC_HELLO_F_EXIT, false },
		{ skel->progs.sched_process_exec, "sched_process_exec", NULL, RC_HELLO_F_EXEC, false },
	};
	const size_t ntargets = sizeof(targets) / sizeof(targets[0]);
	uint32_t missing_flags = 0;

	/* A hook this kernel lacks (syscall tracepoints need CONFIG_FTRACE_SYSCALLS): skip its program. */
	for (size_t i = 0; i < ntargets; i++) {
		const char *hook = targets[i].tp_btf ? targets[i].tp_btf : targets[i].tracepoint;

		if (target_available(&targets[i], vmlinux))
			continue;
		if (targets[i].required) {
			rc_error("tracepoint %s not found: cannot trace TCP connects on this kernel", hook);
			status = EXIT_CANNOT_RUN;
			goto out;
		}
		rc_warn("tracepoint %s not found: its events are not captured", hook);
		bpf_program__set_autoload(targets[i].prog, false);
		missing_flags |= targets[i].flag;
	}

	err = rarecon_events_bpf__load(skel);
	if (err) {
		if (err == -EPERM || err == -EACCES)
			rc_error("loading the BPF programs was refused (%s): run as root, or with CAP_BPF, "
				 "CAP_PERFMON and CAP_SYS_RESOURCE on kernels older than 5.11",
				 strerror(-err));
		else
			rc_error("cannot load the BPF programs: %s (see the libbpf lines above; --verbose for more)",
				 strerror(-err));
		status = EXIT_CANNOT_RUN;
		goto out;
	}

	for (size_t i = 0; i < ntargets; i++) {
		struct bpf_link *l;

		if (!bpf_program__autoload(targets[i].prog))
			continue;
		l = bpf_program__attach(targets[i].prog);
		if (!l) {
			int e = errno;

			if (targets[i].required) {
				rc_error("cannot attach %s: %s",
					 bpf_program__name(targets[i].prog), strerror(e));
				status = EXIT_CANNOT_RUN;
				goto out;
			}
			rc_warn("cannot attach %s: %s; its events are not captured",
				bpf_program__name(targets[i].prog), strerror(e));
			missing_flags |= targets[i].flag;
			continue;
		}
		links[nlinks++] = l;
		flags |= targets[i].flag;
	}
	flags &= ~missing_flags;

	if (opt.dns && !opt.check_only) {
		char why[256];

		if (rc_dns_open(&dns, opt.dns_tcp, why, sizeof(why)) == 0) {
			flags |= RC_HELLO_F_DNS;
			if (opt.dns_tcp)
				flags |= RC_HELLO_F_DNS_TCP;
		} else {
			rc_warn("DNS capture disabled: %s", why);
		}
	}

	if (opt.check_only) {
		rc_info("check passed: programs loaded and attached (flags 0x%x)", flags);
		goto out;
	}

	st.boot_to_realtime_ns = boot_to_realtime_ns();
	/* Images are opened as execs are read: run ahead of the processes we watch (best effort). */
	if (setpriority(PRIO_PROCESS, 0, -10) != 0)
		rc_debug("could not raise the priority: %s", strerror(errno));
	if ((flags & RC_HELLO_F_EXEC) && opt.image_fds > 0) {
		struct rlimit nf;

		if (getrlimit(RLIMIT_NOFILE, &nf) == 0 && nf.rlim_cur < opt.image_fds + 256u + EXEC_FILES_PENDING) {
			nf.rlim_cur = opt.image_fds + 256u + EXEC_FILES_PENDING;
			if (nf.rlim_max < nf.rlim_cur)
				nf.rlim_max = nf.rlim_cur;
			if (setrlimit(RLIMIT_NOFILE, &nf) != 0) {
				getrlimit(RLIMIT_NOFILE, &nf);
				if (nf.rlim_cur < 512) {
					rc_warn("RLIMIT_NOFILE is %lu: no images held", (unsigned long)nf.rlim_cur);
					opt.image_fds = 0;
				} else if (nf.rlim_cur < opt.image_fds + 256u) {
					opt.image_fds = (uint32_t)nf.rlim_cur - 256u;
				}
			}
		}
		st.images = rc_images_new(opt.image_fds, (uint64_t)opt.image_linger_ms * 1000000ull);
		if (st.images && opt.image_fds > 0)
			flags |= RC_HELLO_F_IMAGE_FDS;
	}
	if (flags & RC_HELLO_F_IMAGE_FDS) {
		char err[160];

		st.exec_files = rc_exec_files_open(EXEC_FILES_PENDING, err, sizeof(err));
		if (st.exec_files && rc_exec_files_mark_mounts(st.exec_files) > 0) {
			flags |= RC_HELLO_F_EXEC_FILES;
		} else {
			if (st.exec_files)
				snprintf(err, sizeof(err), "no filesystem could be marked");
			rc_exec_files_close(st.exec_files);
			st.exec_files = NULL;
			rc_info("exec'd files are not held as the execs open them (%s): the image of a process gone "
				"before its EXEC is read is found through /proc or its path only", err);
		}
	}
	if (rc_out_init(&st.out, STDOUT_FILENO, OUT_BUFFER_BYTES) != 0) {
		rc_error("out of memory for the output buffer");
		status = EXIT_RUNTIME;
		goto out;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_kernel_record, &st, NULL);
	if (!rb) {
		rc_error("cannot open the ring buffer: %s", strerror(errno));
		status = EXIT_RUNTIME;
		goto out;
	}

	hello.protocol_version = RC_PROTOCOL_VERSION;
	hello.helper_pid = (uint32_t)getpid();
	hello.boot_to_realtime_ns = st.boot_to_realtime_ns;
	hello.stack_frames = opt.stack_frames;
	hello.stack_scan_words = RC_STACK_SCAN_WORDS;
	hello.udp_dedup_ms = opt.udp_dedup_ms;
	hello.flags = flags;
	hello.max_stack_frames = RC_MAX_STACK_FRAMES;
	hello.dns_max_payload = RC_DNS_MAX_PAYLOAD;
	if (uname(&uts) == 0)
		snprintf(hello.kernel_release, sizeof(hello.kernel_release), "%.63s", uts.release);
	snprintf(hello.helper_version, sizeof(hello.helper_version), "%s", RC_HELPER_VERSION);
	if (rc_out_frame(&st.out, RC_REC_HELLO, &hello, sizeof(hello), NULL, 0) || rc_out_flush(&st.out)) {
		rc_info("stdout closed before HELLO: exiting");
		goto out;
	}
	rc_info("streaming: protocol %d, flags 0x%x, stack frames %u, udp dedup %u ms, ring buffer %u KiB",
		RC_PROTOCOL_VERSION, flags, opt.stack_frames, opt.udp_dedup_ms, opt.ringbuf_kb);
	if (flags & RC_HELLO_F_EXEC) {
		int seeded = seed_running(&st, skel, (flags & RC_HELLO_F_EXIT) != 0);

		if (seeded < 0 || rc_out_flush(&st.out)) {
			rc_info("stdout closed while seeding: exiting");
			goto out;
		}
		rc_info("seeded %d running processes (%u images held)", seeded, st.images ? rc_images_held(st.images) : 0);
		if (st.exec_files) {
			struct rc_exec_files_stats xs;

			rc_exec_files_stats(st.exec_files, &xs);
			rc_info("exec'd files are held as the execs open them (fanotify, %u filesystems)", xs.filesystems);
		}
	}

	uint64_t now = rc_now_ns(CLOCK_MONOTONIC);
	const uint64_t flush_ns = (uint64_t)opt.flush_ms * 1000000ull;
	const uint64_t stats_ns = (uint64_t)opt.stats_interval_ms * 1000000ull;
	uint64_t next_stats = now + stats_ns;
	uint64_t next_clock = now + 1000000000ull;

	while (!stop) {
		struct pollfd fds[5];
		nfds_t nfds = 0;
		int mounts_at;
		uint64_t deadline = next_stats < next_clock ? next_stats : next_clock;
		int timeout_ms, n, consumed;

		if (st.out.len && st.out.oldest_ns + flush_ns < deadline)
			deadline = st.out.oldest_ns + flush_ns;
		now = rc_now_ns(CLOCK_MONOTONIC);
		timeout_ms = deadline > now ? (int)((deadline - now + 999999) / 1000000) : 0;

		fds[nfds++] = (struct pollfd){ .fd = ring_buffer__epoll_fd(rb), .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		/* events = 0: only POLLERR/POLLHUP, which a pipe reports once its reader is gone. */
		fds[nfds++] = (struct pollfd){ .fd = STDOUT_FILENO, .events = 0 };
		if (dns.fd >= 0)
			fds[nfds++] = (struct pollfd){ .fd = dns.fd, .events = POLLIN };
		mounts_at = -1;
		if (st.exec_files && rc_exec_files_mounts_fd(st.exec_files) >= 0) {
			mounts_at = (int)nfds;
			fds[nfds++] = (struct pollfd){ .fd = rc_exec_files_mounts_fd(st.exec_files), .events = POLLPRI };
		}

		n = poll(fds, nfds, timeout_ms);
		if (n < 0 && errno != EINTR) {
			rc_error("poll failed: %s", strerror(errno));
			status = EXIT_RUNTIME;
			break;
		}
		if (n > 0 && (fds[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				rc_info("signal %s received: stopping", strsignal((int)si.ssi_signo));
			stop = true;
		}
		if (n > 0 && (fds[2].revents & (POLLERR | POLLHUP))) {
			reader_gone = true;
			break;
		}

		consumed = ring_buffer__consume(rb);
		if (consumed < 0 && st.out.broken) {
			reader_gone = true;
			break;
		}
		if (consumed < 0 && consumed != -EINTR) {
			rc_error("reading the ring buffer failed: %s", strerror(-consumed));
			status = EXIT_RUNTIME;
			break;
		}
		if (dns.fd >= 0 && nfds > 3 && (fds[3].revents & POLLIN)) {
			if (rc_dns_drain(&dns, &st.out, st.boot_to_realtime_ns, DNS_PACKETS_PER_ROUND)) {
				reader_gone = true;
				break;
			}
		}

		/* A filesystem mounted since: its execs are held too. */
		if (n > 0 && mounts_at >= 0 && (fds[mounts_at].revents & (POLLPRI | POLLERR)))
			rc_exec_files_mark_mounts(st.exec_files);

		now = rc_now_ns(CLOCK_MONOTONIC);
		if (st.images)
			rc_images_sweep(st.images, now);
		if (st.exec_files)
			rc_exec_files_sweep(st.exec_files, now, EXEC_FILES_MAX_AGE_NS);
		if (now >= next_clock) {
			/* Follow clock steps (NTP, settimeofday) for the boot -> realtime conversion. */
			st.boot_to_realtime_ns = boot_to_realtime_ns();
			next_clock = now + 1000000000ull;
		}
		if (now >= next_stats) {
			if (write_loss(&st, skel, dns.fd >= 0 ? &dns : NULL)) {
				reader_gone = true;
				break;
			}
			next_stats = now + stats_ns;
		}
		if (rc_out_due(&st.out, now, flush_ns) && rc_out_flush(&st.out)) {
			reader_gone = true;
			break;
		}
	}

	if (reader_gone || st.out.broken) {
		rc_info("stdout closed: exiting");
	} else {
		/* Clean stop: hand over what the kernel still holds, then final counters. */
		ring_buffer__consume(rb);
		if (dns.fd >= 0)
			rc_dns_drain(&dns, &st.out, st.boot_to_realtime_ns, DNS_PACKETS_PER_ROUND);
		if (write_loss(&st, skel, dns.fd >= 0 ? &dns : NULL) == 0)
			rc_out_flush(&st.out);
	}

out:
	if (st.exec_files) {
		struct rc_exec_files_stats xs;

		rc_exec_files_stats(st.exec_files, &xs);
		rc_debug("exec'd files: %llu opens read, %llu taken by their EXEC, %llu let go, %llu queue overflows",
			 (unsigned long long)xs.events, (unsigned long long)xs.taken, (unsigned long long)xs.unmatched,
			 (unsigned long long)xs.overflows);
		rc_exec_files_close(st.exec_files);
	}
	ring_buffer__free(rb);
	rc_dns_close(&dns);
	for (int i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	rarecon_events_bpf__destroy(skel);
	btf__free(vmlinux);
	rc_out_free(&st.out);
	rc_images_free(st.images);
	if (sfd >= 0)
		close(sfd);
	return status;
}
