/* SPDX-License-Identifier: MIT */
/*
 * rarecon_events.h - the wire contract between the eBPF helper
 * (native-events/build/rarecon-events) and the TypeScript daemon
 * (src/sources/ebpf/wire.ts mirrors every constant and offset below;
 * test/sources/ebpf/wire.test.ts compiles native-events/tools/layout.c
 * against this header and compares).
 *
 * The helper writes a stream of frames to stdout. Every frame is
 *
 *     struct rc_frame_header  (16 bytes)
 *     record body             (header.length - 16 bytes)
 *
 * All integers are little-endian (the helper refuses to build elsewhere).
 * Ports are in host order. Addresses are raw network-order bytes: an IPv4
 * address fills bytes 0..3 of the 16-byte array and the rest is zero; an
 * IPv6 address fills all 16 bytes. The `family` field says which.
 *
 * The first frame of a stream is always HELLO. Frame sequence numbers start
 * at 0 with HELLO and grow by one per frame, so a reader can see a gap.
 *
 * Evolution rules:
 *  - a reader skips (and counts) record types it does not know;
 *  - a record body may grow at its end in a later minor revision: a reader
 *    reads the fields it knows and ignores any tail;
 *  - any other change bumps RC_PROTOCOL_VERSION.
 *
 * The same structs are written by the BPF programs into the ring buffer
 * (behind a struct rc_kernel_header, see below), so this header compiles
 * both for the BPF target (after vmlinux.h) and for user space.
 */
#ifndef RARECON_EVENTS_H
#define RARECON_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* "RCEV" as it appears in the byte stream: 52 43 45 56. */
#define RC_MAGIC 0x56454352u
#define RC_PROTOCOL_VERSION 1

/* A frame is never larger than this; a reader treats a larger length as garbage. */
#define RC_MAX_FRAME_SIZE 65536u

/* Upper bound of user stack frames in a CONNECT record (--stack-frames <= this). */
#define RC_MAX_STACK_FRAMES 32
/* Raw 8-byte words copied from the user stack pointer upwards (see rc_connect.scan). */
#define RC_STACK_SCAN_WORDS 16
/* Longest DNS payload carried in a DNS record; longer messages are cut and flagged. */
#define RC_DNS_MAX_PAYLOAD 4096
#define RC_COMM_LEN 16

enum rc_record_type {
	RC_REC_HELLO = 1,
	RC_REC_CONNECT = 2,
	RC_REC_DNS = 3,
	RC_REC_LOSS = 4,
	RC_REC_EXIT = 5,
	RC_REC_EXEC = 6,
};

/* Address families as used on the wire (the Linux values). */
#define RC_AF_INET 2
#define RC_AF_INET6 10

/* IP protocol numbers as used on the wire. */
#define RC_PROTO_TCP 6
#define RC_PROTO_UDP 17

struct rc_frame_header {
	__u32 magic;	/* RC_MAGIC */
	__u16 version;	/* RC_PROTOCOL_VERSION of the writer */
	__u16 type;	/* enum rc_record_type */
	__u32 length;	/* whole frame in bytes, this header included */
	__u32 seq;	/* 0 for HELLO, then +1 per frame */
};

/* HELLO.flags: what this helper run actually captures. */
#define RC_HELLO_F_TCP4 (1u << 0)	 /* IPv4 TCP connects captured (kprobe tcp_connect) */
#define RC_HELLO_F_TCP6 (1u << 1)	 /* IPv6 TCP connects captured (kprobe tcp_connect) */
#define RC_HELLO_F_UDP4 (1u << 2)	 /* IPv4 UDP sends and connects (udp_sendmsg, __ip4_datagram_connect) */
#define RC_HELLO_F_UDP6 (1u << 3)	 /* IPv6 UDP sends and connects (udpv6_sendmsg, __ip6_datagram_connect) */
#define RC_HELLO_F_DNS (1u << 4)	 /* AF_PACKET DNS capture (UDP source port 53) running */
#define RC_HELLO_F_DNS_TCP (1u << 5)	 /* single-segment DNS-over-TCP responses captured too */
#define RC_HELLO_F_EXIT (1u << 6)	 /* EXIT records for processes that were reported */
#define RC_HELLO_F_STACK_SCAN (1u << 7) /* rc_connect.scan filled (bpf_task_pt_regs present) */
#define RC_HELLO_F_EXEC (1u << 8)	 /* EXEC records (sched_process_exec), running processes seeded at start */
#define RC_HELLO_F_FIND_VMA (1u << 9)	 /* CONNECT frames judged in the kernel (bpf_find_vma, 5.17+) */
#define RC_HELLO_F_IMAGE_FDS (1u << 10) /* the helper holds an fd of each exec'd image (rc_exec.image_fd) */
#define RC_HELLO_F_EXEC_FILES (1u << 11) /* images taken as the execs open them (fanotify FAN_OPEN_EXEC) */

/* First frame of every stream. */
struct rc_hello {
	__u32 protocol_version;	  /* RC_PROTOCOL_VERSION */
	__u32 helper_pid;	  /* pid of the helper process */
	__s64 boot_to_realtime_ns; /* CLOCK_REALTIME - CLOCK_BOOTTIME when the stream started */
	__u32 stack_frames;	  /* effective --stack-frames (0..RC_MAX_STACK_FRAMES) */
	__u32 stack_scan_words;	  /* RC_STACK_SCAN_WORDS */
	__u32 udp_dedup_ms;	  /* effective --udp-dedup-ms (0 = no deduplication) */
	__u32 flags;		  /* RC_HELLO_F_* */
	__u32 max_stack_frames;	  /* RC_MAX_STACK_FRAMES */
	__u32 dns_max_payload;	  /* RC_DNS_MAX_PAYLOAD */
	char kernel_release[64];  /* uname -r, NUL-terminated */
	char helper_version[24];  /* helper build version, NUL-terminated */
};

/* rc_connect.kind: which kernel path saw the attempt. */
enum rc_connect_kind {
	RC_KIND_TCP_CONNECT = 1, /* a TCP SYN about to be sent for connect() (also TCP fast open) */
	RC_KIND_UDP_CONNECT = 2, /* connect() on a UDP socket (no datagram sent yet) */
	RC_KIND_UDP_SEND = 3,	 /* a datagram sent to a destination (sendto/sendmsg/send) */
};

/* rc_connect.flags */
#define RC_CONNECT_F_KERNEL_THREAD (1u << 0) /* no user memory: stack and scan empty */
#define RC_CONNECT_F_EXE_MEMFD (1u << 1)     /* the executable is a memfd (at the connect) */
#define RC_CONNECT_F_EXE_DELETED (1u << 2)   /* the executable has no name on disk (nlink 0, not a memfd) */
#define RC_CONNECT_F_JUDGED (1u << 3)	     /* verdict, frame_kind and scan_kind were filled by the kernel */
#define RC_CONNECT_F_TRACER_ODD_EXE (1u << 4) /* the tracer's executable is a memfd or deleted */

/* rc_connect.verdict: what the kernel concluded from the user stack. */
enum rc_verdict {
	RC_VERDICT_NONE = 0,	  /* not judged (no bpf_find_vma, or a kernel thread) */
	RC_VERDICT_CLEAN = 1,	  /* the first frame beyond libc/loader is in a file-backed executable mapping */
	RC_VERDICT_FRAME = 2,	  /* an unwound frame (stack[offending_index]) is in memory no file backs */
	RC_VERDICT_RETURN = 3,	  /* a return address in the scan (scan[offending_index]) is */
	RC_VERDICT_UNDECIDED = 4, /* a frame lies in no mapping: nothing concluded from the frames (scan still judged) */
};

/* rc_connect.frame_kind[] / scan_kind[]: the mapping an address lies in. */
enum rc_vma_kind {
	RC_VMA_UNCHECKED = 0, /* not looked at (the verdict was reached before) */
	RC_VMA_NONE = 1,      /* in no mapping */
	RC_VMA_NOEXEC = 2,    /* a mapping without PROT_EXEC */
	RC_VMA_FILE = 3,      /* executable, backed by a file with a name */
	RC_VMA_LIBC = 4,      /* executable, the C library or the dynamic loader */
	RC_VMA_ANON = 5,      /* executable, anonymous (heap, stack, mmap, shared /dev/zero) */
	RC_VMA_MEMFD = 6,     /* executable, a memfd */
	RC_VMA_DELETED = 7,   /* executable, a file unlinked since it was mapped */
	RC_VMA_SPECIAL = 8,   /* the kernel's pages ([vdso], [vsyscall]) */
};

/*
 * CONNECT: one outbound attempt, captured in the context of the thread that
 * made it. Fixed size; only stack[0..stack_count) and scan[0..scan_count)
 * are meaningful, the rest is zero.
 */
struct rc_connect {
	__u64 boot_ns;		  /* bpf_ktime_get_boot_ns() at the attempt */
	__u64 realtime_ns;	  /* boot_ns converted to CLOCK_REALTIME by the helper */
	__u64 proc_start_boot_ns; /* thread group leader start_boottime (pid reuse guard;
				   * /proc/<pid>/stat field 22 * 1e9 / HZ, to tick precision) */
	__u32 pid;		  /* thread group id (what user space calls pid) */
	__u32 tid;		  /* id of the connecting thread */
	__u32 ppid;		  /* real parent's thread group id */
	__u32 uid;		  /* real uid */
	__u32 gid;		  /* real gid */
	__u32 exe_dev;		  /* device of the executable's inode, kernel encoding
				   * (major << 20 | minor); 0 when unknown */
	__u64 exe_ino;		  /* inode number of the executable (as stat(2) of
				   * /proc/<pid>/exe shows it); 0 when unknown */
	char comm[RC_COMM_LEN];	  /* thread name, NUL-padded */
	__u16 family;		  /* RC_AF_INET or RC_AF_INET6 (of the destination) */
	__u8 protocol;		  /* RC_PROTO_TCP or RC_PROTO_UDP */
	__u8 kind;		  /* enum rc_connect_kind */
	__u16 local_port;	  /* host order; 0 when the socket is not bound yet
				   * (UDP before its first datagram) */
	__u16 remote_port;	  /* host order */
	__u8 local_addr[16];	  /* socket's bound source address; may be unspecified for UDP */
	__u8 remote_addr[16];	  /* destination */
	__u32 netns_ino;	  /* inode of the socket's network namespace */
	__s32 stack_err;	  /* 0, or the negative errno bpf_get_stack returned */
	__u16 stack_count;	  /* valid entries in stack[] */
	__u16 scan_count;	  /* valid entries in scan[] */
	__u32 flags;		  /* RC_CONNECT_F_* */
	__u64 user_sp;		  /* user stack pointer of the thread at the system call */
	__u64 cgroup_id;	  /* cgroup v2 id of the thread (containers, systemd units) */
	/* Raw words read from user_sp upwards. Frame-pointer unwinding misses the
	 * immediate caller of a libc wrapper built without frame pointers (glibc's
	 * connect keeps its return address at sp+0 or sp+0x18); these words hold
	 * it, so the daemon can look for return addresses in anonymous memory. */
	__u64 scan[RC_STACK_SCAN_WORDS];
	/* User stack of the connecting thread, innermost first, from
	 * bpf_get_stack(BPF_F_USER_STACK) (frame-pointer unwinding). */
	__u64 stack[RC_MAX_STACK_FRAMES];
	/* --- appended in revision 1.1 (readers of 528-byte bodies ignore them) --- */
	__u8 verdict;		  /* enum rc_verdict */
	__u8 offending_kind;	  /* enum rc_vma_kind of the offending address */
	__u16 offending_index;	  /* index in stack[] (FRAME) or scan[] (RETURN) */
	__u32 tracer_pid;	  /* tgid ptracing the connecting thread (else its group leader); 0 none */
	__u64 offending_addr;	  /* the offending address (0 unless FRAME or RETURN) */
	__u8 frame_kind[RC_MAX_STACK_FRAMES]; /* enum rc_vma_kind per stack[] entry */
	__u8 scan_kind[RC_STACK_SCAN_WORDS];  /* enum rc_vma_kind per scan[] word */
	char offending_name[32];  /* file name (dentry) of the offending mapping, e.g. "memfd:x"; "" when anonymous */
	char tracer_exe[32];	  /* file name (dentry) of the tracer's executable, NUL-terminated */
	__u64 reserved;
};

/* rc_dns.flags */
#define RC_DNS_F_TRUNCATED (1u << 0) /* payload cut at RC_DNS_MAX_PAYLOAD (or at the capture) */

/*
 * DNS: one DNS message received by this host from source port 53, as raw
 * bytes (parsing happens in TypeScript). The body is this head followed by
 * payload_len bytes of DNS message (for TCP the 2-byte length prefix removed).
 */
struct rc_dns {
	__u64 realtime_ns;	/* kernel receive timestamp (SO_TIMESTAMPNS), CLOCK_REALTIME */
	__u64 boot_ns;		/* the same instant on CLOCK_BOOTTIME */
	__u16 family;		/* RC_AF_INET or RC_AF_INET6 */
	__u8 transport;		/* RC_PROTO_UDP or RC_PROTO_TCP */
	__u8 flags;		/* RC_DNS_F_* */
	__u16 client_port;	/* destination port of the response (the asking socket), host order */
	__u16 server_port;	/* 53 */
	__u8 client_addr[16];	/* destination address of the response (this host) */
	__u8 server_addr[16];	/* the DNS server that answered */
	__u32 ifindex;		/* interface the response arrived on */
	__u16 payload_len;	/* bytes of DNS message following this head */
	__u16 orig_len;		/* length of the whole DNS message as seen on the wire */
	/* __u8 payload[payload_len] follows */
};

/*
 * LOSS: cumulative counters since the helper started, sent every
 * --stats-interval-ms (default 1000) and once more at a clean exit.
 */
struct rc_loss {
	__u64 realtime_ns;	/* when the counters were read */
	__u64 kernel_events;	/* records the BPF programs put in the ring buffer */
	__u64 ringbuf_drops;	/* records lost: ring buffer full (bpf_ringbuf_reserve failed) */
	__u64 udp_deduped;	/* UDP attempts suppressed by the dedup window (not a loss) */
	__u64 stack_errors;	/* bpf_get_stack failures (record still sent, stack empty) */
	__u64 dns_packets;	/* DNS records sent */
	__u64 dns_socket_drops; /* packets the AF_PACKET socket dropped (PACKET_STATISTICS) */
	__u64 dns_truncated;	/* DNS records sent with RC_DNS_F_TRUNCATED */
	__u64 dns_bad_packets;	/* captured packets whose IP/UDP/TCP headers did not parse */
	__u64 dns_tcp_skipped;	/* TCP segments from port 53 not holding one whole DNS message */
	__u64 frames_written;	/* frames written to stdout before this one */
	__u64 bytes_written;	/* bytes written to stdout before this frame */
};

/* EXIT: a process that had at least one CONNECT reported has exited (whole thread group). */
struct rc_exit {
	__u64 boot_ns;		  /* when the last thread exited */
	__u64 realtime_ns;	  /* boot_ns converted by the helper */
	__u64 proc_start_boot_ns; /* same meaning as in rc_connect */
	__u32 pid;		  /* thread group id */
	__s32 exit_code;	  /* task exit_code (status as for wait(2)); best effort */
	char comm[RC_COMM_LEN];
};

/* rc_exec.flags */
#define RC_EXEC_F_MEMFD (1u << 0)	  /* the image is a memfd (memfd_create + fexecve) */
#define RC_EXEC_F_DELETED (1u << 1)	  /* the image had no name on disk at exec (nlink 0, not a memfd) */
#define RC_EXEC_F_SEEDED (1u << 2)	  /* not an exec: a process already running when the helper started (from /proc) */
#define RC_EXEC_F_PATH_TRUNCATED (1u << 3) /* path cut at RC_EXEC_PATH_MAX or at RC_EXEC_PATH_DEPTH components */
#define RC_EXEC_F_ARGS_TRUNCATED (1u << 4) /* args cut at RC_EXEC_ARGS_MAX */

#define RC_EXEC_PATH_MAX 1024 /* longest path carried (bytes, NUL excluded) */
#define RC_EXEC_PATH_DEPTH 32 /* path components walked in the kernel */
#define RC_EXEC_ARGS_MAX 256  /* bytes of the argument strings carried */

/*
 * EXEC: a process image was loaded (sched_process_exec), or, with
 * RC_EXEC_F_SEEDED, a process was already running at start. The body is this
 * head followed by path_len bytes of path (no NUL) and args_len bytes of
 * NUL-separated arguments. The path is the one the kernel resolved (the
 * dentry chain up to the root of the mount tree, not the name given to
 * execve); a memfd is "/memfd:<name>".
 *
 * image_fd: the helper opened /proc/<pid>/exe read-only as soon as it read
 * the record, checked that its (dev, ino) is the record's, and keeps it open
 * until the process has exited plus --image-linger-ms. The daemon reads the
 * image through /proc/<helper_pid>/fd/<image_fd> (and checks dev, ino and
 * ctime again: the number may have been reused). -1 when not held; then
 * image_errno says why (ESRCH: the process had already exited).
 */
struct rc_exec {
	__u64 boot_ns;		  /* when the image was loaded (seeded: when it was read) */
	__u64 realtime_ns;	  /* boot_ns converted by the helper */
	__u64 proc_start_boot_ns; /* same meaning as in rc_connect (seeded: to tick precision) */
	__u32 pid;		  /* thread group id */
	__u32 old_tid;		  /* the thread that called execve (before it took over the leader's id) */
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 exe_dev;		  /* kernel encoding, as rc_connect.exe_dev */
	__u64 exe_ino;
	__s64 ctime_ns;		  /* inode change time at exec (ns since the epoch) */
	__u32 nlink;		  /* link count at exec */
	__u32 flags;		  /* RC_EXEC_F_* */
	__s32 image_fd;		  /* fd number in the helper holding the image, or -1 */
	__s32 image_errno;	  /* why image_fd is -1 (0 when held or not tried) */
	__u16 path_len;
	__u16 args_len;
	char comm[RC_COMM_LEN];
	__u32 reserved;
	/* char path[path_len], then char args[args_len] follow */
};

/*
 * Ring buffer records (kernel -> helper, never on the wire): a small header
 * naming the type, then the struct above. The helper prepends a frame header,
 * fills realtime_ns and writes the struct unchanged.
 */
struct rc_kernel_header {
	__u32 type; /* RC_REC_CONNECT or RC_REC_EXIT */
	__u32 reserved;
};

struct rc_kernel_connect {
	struct rc_kernel_header hdr;
	struct rc_connect body;
};

struct rc_kernel_exit {
	struct rc_kernel_header hdr;
	struct rc_exit body;
};

/* The path is built backwards from the end of path[]; path[path_off..] holds it. */
struct rc_kernel_exec {
	struct rc_kernel_header hdr;
	struct rc_exec body;
	__u32 path_off;
	__u32 pad;
	char path[RC_EXEC_PATH_MAX + 256]; /* + one component of slack for the verifier's bounds */
	char args[RC_EXEC_ARGS_MAX];
};

/* Indexes of the per-CPU counter array map `counters`. */
enum rc_counter {
	RC_CNT_EVENTS = 0,
	RC_CNT_RINGBUF_DROPS = 1,
	RC_CNT_UDP_DEDUPED = 2,
	RC_CNT_STACK_ERRORS = 3,
	RC_CNT__COUNT = 4,
};

/* Frame body sizes (also checked with _Static_assert in the helper). */
#define RC_HELLO_SIZE 128
#define RC_CONNECT_SIZE 664
#define RC_CONNECT_V1_SIZE 528 /* revision 1.0 body, still accepted by readers */
#define RC_DNS_HEAD_SIZE 64
#define RC_LOSS_SIZE 96
#define RC_EXIT_SIZE 48
#define RC_EXEC_HEAD_SIZE 104

#endif /* RARECON_EVENTS_H */
