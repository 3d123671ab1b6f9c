// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * rarecon_events.bpf.c - kernel side of the rarecon sensor (CO-RE).
 *
 * Every attempt is captured in the context of the thread that made it, so
 * pid, tid, uid and the user stack are those of the caller. Only tracepoints
 * are used: they are present on kernels built without kprobes or ftrace
 * trampolines (fentry/fexit), which rules out the function probes on some VM
 * kernels, and their arguments are a stable interface.
 *
 *   - TCP connects, IPv4 and IPv6: tp_btf/inet_sock_set_state, transition
 *     CLOSE -> SYN_SENT. tcp_v4_connect / tcp_v6_connect make it inside
 *     connect() (or a fast-open sendmsg), in the calling thread, with the
 *     destination and source address already in the socket; blocking and
 *     non-blocking connects look the same (the latter then return EINPROGRESS).
 *     The values come from the kernel's socket, not from user memory, so a
 *     racing thread cannot make the record lie. The source port is chosen
 *     just after this transition and is therefore 0 in TCP records.
 *
 *   - UDP flows: syscall tracepoints. sendto / sendmsg / sendmmsg on a UDP
 *     socket report the destination given with the call (read from user
 *     memory) or, without one, the connected peer; connect() on a UDP socket
 *     is reported at sys_exit_connect from the peer the kernel stored. A flow
 *     is keyed by (tgid, kind, family, address, port) in an LRU hash and
 *     reported at most once per dedup window, so a busy socket does not flood
 *     the ring buffer. write() on a connected UDP socket is covered by the
 *     record of its connect().
 *
 *   - process exits (tp_btf/sched_process_exit) of thread groups that had at
 *     least one record reported, so the daemon can drop per-process state.
 *
 * IPv4-mapped IPv6 destinations (::ffff:a.b.c.d) are reported as IPv4.
 *
 * Records go to one BPF ring buffer; every reserve failure is counted in a
 * per-CPU counter array that the helper reports in LOSS frames.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "../rarecon_events.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_UDP_ 17
#define SOCK_DGRAM_ 2

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Set by the helper before load (read-only after load, so the verifier folds them). */
const volatile __u32 cfg_stack_frames = RC_MAX_STACK_FRAMES;
const volatile __u64 cfg_udp_dedup_ns = 60ULL * 1000 * 1000 * 1000;
const volatile bool cfg_stack_scan = true;
const volatile bool cfg_exit_events = true;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the helper (--ringbuf-kb) */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RC_CNT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* One UDP flow as seen by one process. */
struct udp_flow_key {
	__u32 tgid;
	__u16 family;
	__u16 port;	/* destination, host order */
	__u8 addr[16];	/* destination */
	__u32 kind;	/* RC_KIND_UDP_CONNECT or RC_KIND_UDP_SEND */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct udp_flow_key);
	__type(value, __u64); /* boot_ns of the last report */
} udp_flows SEC(".maps");

/* Thread groups that had a record reported: only these get an EXIT record. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} reported_tgids SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

/* One end of an attempt, in wire form. */
struct endpoint {
	__u16 family;
	__u16 port; /* host order */
	__u8 addr[16];
};

static __always_inline bool is_v4_mapped(const __u8 *a)
{
	/* ::ffff:a.b.c.d */
	for (int i = 0; i < 10; i++)
		if (a[i])
			return false;
	return a[10] == 0xff && a[11] == 0xff;
}

/* Turn ::ffff:a.b.c.d into the IPv4 endpoint a.b.c.d. */
static __always_inline void unmap_v4(struct endpoint *ep)
{
	ep->family = AF_INET;
	ep->addr[0] = ep->addr[12];
	ep->addr[1] = ep->addr[13];
	ep->addr[2] = ep->addr[14];
	ep->addr[3] = ep->addr[15];
	for (int i = 4; i < 16; i++)
		ep->addr[i] = 0;
}

static __always_inline bool is_unspecified(const struct endpoint *ep)
{
	for (int i = 0; i < 16; i++)
		if (ep->addr[i])
			return false;
	return true;
}

/* Read a struct sockaddr (kernel copy) into *ep. Returns false for other families. */
static __always_inline bool read_sockaddr(const struct sockaddr *sa, __u16 want_family, struct endpoint *ep)
{
	__u16 fam = BPF_CORE_READ(sa, sa_family);

	if (fam != want_family)
		return false;
	__builtin_memset(ep, 0, sizeof(*ep));
	ep->family = fam;
	if (fam == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		ep->port = bpf_ntohs(BPF_CORE_READ(sin, sin_port));
		bpf_probe_read_kernel(ep->addr, 4, &sin->sin_addr);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		ep->port = bpf_ntohs(BPF_CORE_READ(sin6, sin6_port));
		bpf_probe_read_kernel(ep->addr, 16, &sin6->sin6_addr);
	}
	return true;
}

/* The peer of a socket, as the given family sees it. */
static __always_inline void read_sock_peer(struct sock *sk, __u16 family, struct endpoint *ep)
{
	__builtin_memset(ep, 0, sizeof(*ep));
	ep->family = family;
	ep->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET)
		bpf_probe_read_kernel(ep->addr, 4, &sk->__sk_common.skc_daddr);
	else
		bpf_probe_read_kernel(ep->addr, 16, &sk->__sk_common.skc_v6_daddr);
}

/*
 * The socket's own end. The IPv4 paths also serve IPv6 sockets with
 * IPv4-mapped peers, whose IPv4 source sits in skc_rcv_saddr all the same:
 * go by the record's family, not the socket's.
 */
static __always_inline void read_sock_local(struct sock *sk, __u16 family, struct endpoint *ep)
{
	__builtin_memset(ep, 0, sizeof(*ep));
	ep->family = family;
	ep->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (family == AF_INET)
		bpf_probe_read_kernel(ep->addr, 4, &sk->__sk_common.skc_rcv_saddr);
	else
		bpf_probe_read_kernel(ep->addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
}

static __always_inline void fill_stack(void *ctx, struct rc_connect *e, struct task_struct *task)
{
	__u32 frames = cfg_stack_frames;
	long n;

	if (!BPF_CORE_READ(task, mm)) {
		/* Kernel thread (an in-kernel socket user): no user stack. */
		e->flags |= RC_CONNECT_F_KERNEL_THREAD;
		e->stack_err = -14; /* -EFAULT */
		return;
	}

	if (frames > RC_MAX_STACK_FRAMES)
		frames = RC_MAX_STACK_FRAMES;
	if (frames > 0) {
		/* From kprobe context the kernel unwinds the user registers saved
		 * at syscall entry (task_pt_regs), following frame pointers. */
		n = bpf_get_stack(ctx, e->stack, frames * sizeof(__u64), BPF_F_USER_STACK);
		if (n < 0) {
			e->stack_err = (__s32)n;
			count(RC_CNT_STACK_ERRORS);
		} else {
			e->stack_count = (__u16)(n / sizeof(__u64));
		}
	}

	if (cfg_stack_scan && bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs)) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
		__u64 sp = PT_REGS_SP_CORE(regs);

		e->user_sp = sp;
		if (sp && bpf_probe_read_user(e->scan, sizeof(e->scan), (void *)sp) == 0)
			e->scan_count = RC_STACK_SCAN_WORDS;
	}
}

/* Reserve, fill and submit one CONNECT record. */
static __always_inline void emit_connect(void *ctx, struct sock *sk, const struct endpoint *remote,
					 const struct endpoint *local, __u8 protocol, __u8 kind, __u64 now)
{
	struct rc_kernel_connect *rec;
	struct rc_connect *e;
	struct task_struct *task;
	struct file *exe;
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	__u32 tgid = id >> 32;
	__u8 one = 1;

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		count(RC_CNT_RINGBUF_DROPS);
		return;
	}
	/* Reserved memory is not zeroed: clear it (stack/scan tails must be zero). */
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = RC_REC_CONNECT;
	e = &rec->body;

	task = bpf_get_current_task_btf();
	e->boot_ns = now;
	e->proc_start_boot_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	e->pid = tgid;
	e->tid = (__u32)id;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)ug;
	e->gid = ug >> 32;
	/* The executable as stat(2) of /proc/<pid>/exe sees it (the dentry's
	 * inode, which is the overlay inode on overlayfs). */
	exe = BPF_CORE_READ(task, mm, exe_file);
	if (exe) {
		e->exe_ino = BPF_CORE_READ(exe, f_path.dentry, d_inode, i_ino);
		e->exe_dev = BPF_CORE_READ(exe, f_path.dentry, d_inode, i_sb, s_dev);
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->family = remote->family;
	e->protocol = protocol;
	e->kind = kind;
	e->remote_port = remote->port;
	__builtin_memcpy(e->remote_addr, remote->addr, 16);
	e->local_port = local->port;
	__builtin_memcpy(e->local_addr, local->addr, 16);
	e->netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	e->cgroup_id = bpf_get_current_cgroup_id();
	fill_stack(ctx, e, task);

	bpf_ringbuf_submit(rec, 0);
	count(RC_CNT_EVENTS);
	if (cfg_exit_events)
		bpf_map_update_elem(&reported_tgids, &tgid, &one, BPF_ANY);
}

/* ---- TCP ---------------------------------------------------------------- */

#define TCP_SYN_SENT_ 2
#define TCP_CLOSE_ 7
#define IPPROTO_TCP_ 6

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	struct endpoint remote, local;
	__u16 family;

	if (newstate != TCP_SYN_SENT_ || oldstate != TCP_CLOSE_)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP_)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		read_sock_peer(sk, AF_INET, &remote);
	} else if (family == AF_INET6) {
		read_sock_peer(sk, AF_INET6, &remote);
		if (is_v4_mapped(remote.addr)) {
			/* IPv6 socket, IPv4 peer: report it as the IPv4 connect it is. */
			unmap_v4(&remote);
			family = AF_INET;
		}
	} else {
		return 0;
	}
	read_sock_local(sk, family, &local);
	emit_connect(ctx, sk, &remote, &local, RC_PROTO_TCP, RC_KIND_TCP_CONNECT, bpf_ktime_get_boot_ns());
	return 0;
}

/* ---- UDP ---------------------------------------------------------------- */

#define S_IFMT_ 00170000
#define S_IFSOCK_ 0140000

/* The UDP socket behind a file descriptor of the current task, or NULL. */
static __always_inline struct sock *udp_sock_of_fd(long fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT_) != S_IFSOCK_)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP_ || BPF_CORE_READ(sk, sk_type) != SOCK_DGRAM_)
		return NULL;
	return sk;
}

/* The peer of a connected UDP socket, IPv4-mapped peers unmapped. */
static __always_inline void read_udp_peer(struct sock *sk, struct endpoint *remote)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET) {
		read_sock_peer(sk, AF_INET, remote);
	} else {
		read_sock_peer(sk, AF_INET6, remote);
		if (is_v4_mapped(remote->addr))
			unmap_v4(remote);
	}
}

/* A destination passed by user space (sockaddr in user memory). */
static __always_inline bool read_user_sockaddr(const void *uaddr, long len, struct endpoint *ep)
{
	struct sockaddr_in6 sa = {};

	if (!uaddr || len < (long)sizeof(struct sockaddr_in))
		return false;
	if (bpf_probe_read_user(&sa, len < (long)sizeof(sa) ? sizeof(struct sockaddr_in) : sizeof(sa), uaddr))
		return false;
	__builtin_memset(ep, 0, sizeof(*ep));
	if (sa.sin6_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&sa;

		ep->family = AF_INET;
		ep->port = bpf_ntohs(sin->sin_port);
		__builtin_memcpy(ep->addr, &sin->sin_addr, 4);
		return true;
	}
	if (sa.sin6_family == AF_INET6 && len >= (long)sizeof(struct sockaddr_in6)) {
		ep->family = AF_INET6;
		ep->port = bpf_ntohs(sa.sin6_port);
		__builtin_memcpy(ep->addr, &sa.sin6_addr, 16);
		if (is_v4_mapped(ep->addr))
			unmap_v4(ep);
		return true;
	}
	return false;
}

/* Report a UDP flow unless this process reported it within the dedup window. */
static __always_inline void emit_udp(void *ctx, struct sock *sk, const struct endpoint *remote, __u8 kind)
{
	struct udp_flow_key key = {};
	struct endpoint local;
	__u64 now = bpf_ktime_get_boot_ns();
	__u64 *last;

	if (is_unspecified(remote) || remote->port == 0)
		return;

	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.family = remote->family;
	key.port = remote->port;
	key.kind = kind;
	__builtin_memcpy(key.addr, remote->addr, 16);

	if (cfg_udp_dedup_ns) {
		last = bpf_map_lookup_elem(&udp_flows, &key);
		if (last && now - *last < cfg_udp_dedup_ns) {
			count(RC_CNT_UDP_DEDUPED);
			return;
		}
	}
	read_sock_local(sk, remote->family, &local);
	emit_connect(ctx, sk, remote, &local, RC_PROTO_UDP, kind, now);
	if (cfg_udp_dedup_ns)
		bpf_map_update_elem(&udp_flows, &key, &now, BPF_ANY);
}

/* A datagram to `uaddr` (or to the connected peer when uaddr is NULL). */
static __always_inline void on_udp_send(void *ctx, long fd, const void *uaddr, long addrlen)
{
	struct endpoint remote;
	struct sock *sk = udp_sock_of_fd(fd);

	if (!sk)
		return;
	if (uaddr) {
		if (!read_user_sockaddr(uaddr, addrlen, &remote))
			return;
	} else {
		read_udp_peer(sk, &remote);
	}
	emit_udp(ctx, sk, &remote, RC_KIND_UDP_SEND);
}

/* sendto(fd, buf, len, flags, addr, addrlen) */
SEC("tracepoint/syscalls/sys_enter_sendto")
int sys_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	on_udp_send(ctx, (long)ctx->args[0], (const void *)ctx->args[4], (long)ctx->args[5]);
	return 0;
}

/* sendmsg(fd, msg, flags) */
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int sys_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	struct user_msghdr mh = {};

	if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)ctx->args[1]))
		return 0;
	on_udp_send(ctx, (long)ctx->args[0], mh.msg_name, mh.msg_namelen);
	return 0;
}

#define SENDMMSG_SCAN 4

/* sendmmsg(fd, msgvec, vlen, flags): the first SENDMMSG_SCAN destinations. */
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int sys_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	struct mmsghdr *vec = (struct mmsghdr *)ctx->args[1];
	unsigned long vlen = ctx->args[2];

	for (int i = 0; i < SENDMMSG_SCAN; i++) {
		struct user_msghdr mh = {};

		if ((unsigned long)i >= vlen)
			break;
		if (bpf_probe_read_user(&mh, sizeof(mh), &vec[i].msg_hdr))
			break;
		on_udp_send(ctx, (long)ctx->args[0], mh.msg_name, mh.msg_namelen);
		if (!mh.msg_name)
			break; /* connected socket: one peer for the whole vector */
	}
	return 0;
}

/* UDP sockets in connect(), by thread, from sys_enter to sys_exit. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* struct sock * */
} udp_connecting SEC(".maps");

/* connect(fd, addr, addrlen) */
SEC("tracepoint/syscalls/sys_enter_connect")
int sys_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 sk = (__u64)udp_sock_of_fd((long)ctx->args[0]);

	if (sk)
		bpf_map_update_elem(&udp_connecting, &id, &sk, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int sys_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *skp = bpf_map_lookup_elem(&udp_connecting, &id);
	struct endpoint remote;
	struct sock *sk;

	if (!skp)
		return 0;
	sk = (struct sock *)*skp;
	bpf_map_delete_elem(&udp_connecting, &id);
	if (ctx->ret != 0)
		return 0; /* refused, or AF_UNSPEC disconnect */
	/* The peer as the kernel stored it, not as user memory says. */
	read_udp_peer(sk, &remote);
	emit_udp(ctx, sk, &remote, RC_KIND_UDP_CONNECT);
	return 0;
}

/* ---- process exit ------------------------------------------------------- */

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	struct rc_kernel_exit *rec;
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (!cfg_exit_events)
		return 0;
	/* Only when the last thread of the group goes (signal->live reached 0). */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	if (!bpf_map_lookup_elem(&reported_tgids, &tgid))
		return 0;
	bpf_map_delete_elem(&reported_tgids, &tgid);

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		count(RC_CNT_RINGBUF_DROPS);
		return 0;
	}
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->hdr.type = RC_REC_EXIT;
	rec->body.boot_ns = bpf_ktime_get_boot_ns();
	rec->body.proc_start_boot_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	rec->body.pid = tgid;
	rec->body.exit_code = BPF_CORE_READ(p, exit_code);
	bpf_probe_read_kernel_str(rec->body.comm, sizeof(rec->body.comm), p->comm);
	bpf_ringbuf_submit(rec, 0);
	count(RC_CNT_EVENTS);
	return 0;
}
