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
/* bpf_find_vma is there (5.17+): judge the stack frames in the kernel. */
const volatile bool cfg_find_vma = true;
const volatile bool cfg_exec_events = true;

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

/* ---- the mapping behind an address (bpf_find_vma) ------------------------ */

#define VM_EXEC_ 0x00000004UL
#define VSYSCALL_ADDR_ 0xffffffffff600000ULL
#define TMPFS_MAGIC_ 0x01021994
#define HUGETLBFS_MAGIC_ 0x958458f6

struct vma_probe {
	__u8 kind;     /* enum rc_vma_kind */
	__u64 vm_start;
	struct file *file;
};

static long vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_probe *p = data;

	p->vm_start = BPF_CORE_READ(vma, vm_start);
	p->file = BPF_CORE_READ(vma, vm_file);
	p->kind = (BPF_CORE_READ(vma, vm_flags) & VM_EXEC_) ? RC_VMA_FILE : RC_VMA_NOEXEC;
	return 0;
}

/* memfd files live on the kernel's internal tmpfs (or hugetlbfs) with a "memfd:" name and no link. */
static __always_inline bool name_is(const char *n, const char *want, int len)
{
	for (int i = 0; i < len; i++)
		if (n[i] != want[i])
			return false;
	return true;
}

/* What kind of file an executable mapping (or an image) is. name: its dentry name, 16+ bytes. */
static __always_inline __u8 file_kind(struct file *f, char *name, int name_size)
{
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct inode *ino = BPF_CORE_READ(d, d_inode);
	unsigned long magic = BPF_CORE_READ(ino, i_sb, s_magic);
	unsigned int nlink = BPF_CORE_READ(ino, __i_nlink);

	bpf_probe_read_kernel_str(name, name_size, BPF_CORE_READ(d, d_name.name));
	if (nlink == 0 && (magic == TMPFS_MAGIC_ || magic == HUGETLBFS_MAGIC_)) {
		if (name_is(name, "memfd:", 6))
			return RC_VMA_MEMFD;
		/* Shared anonymous memory is the unlinked shmem file "dev/zero". */
		if (name_is(name, "dev/zero", 9))
			return RC_VMA_ANON;
	}
	if (nlink == 0)
		return RC_VMA_DELETED;
	/* libc, libpthread, ld: followed by '.', '-' or the end (ld-linux-x86-64.so.2, libc.so.6, libc.musl-x86_64.so.1) */
	if (name_is(name, "libc", 4) && (name[4] == '.' || name[4] == '-' || name[4] == 0))
		return RC_VMA_LIBC;
	if (name_is(name, "libpthread", 10) && (name[10] == '.' || name[10] == '-' || name[10] == 0))
		return RC_VMA_LIBC;
	if (name_is(name, "ld", 2) && (name[2] == '.' || name[2] == '-' || name[2] == 0))
		return RC_VMA_LIBC;
	return RC_VMA_FILE;
}

struct judge_scratch {
	char name[32];
	__u8 before[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct judge_scratch);
} judge_scratch_map SEC(".maps");

/* bpf_loop's context (on the stack, as it must be): small, the UDP programs are near the 512-byte limit. */
struct judge_ctx {
	struct rc_connect *e;
};



/* Kind of the mapping holding addr in the current task; name filled for file kinds. */
static __always_inline __u8 addr_kind(struct task_struct *task, __u64 addr, char *name)
{
	struct vma_probe p = {};
	void *vdso;

	if (addr >= VSYSCALL_ADDR_ && addr < VSYSCALL_ADDR_ + 4096)
		return RC_VMA_SPECIAL;
	if (bpf_find_vma(task, addr, vma_cb, &p, 0) != 0)
		return RC_VMA_NONE;
	if (p.kind != RC_VMA_FILE)
		return p.kind;
	if (!p.file) {
		vdso = BPF_CORE_READ(task, mm, context.vdso);
		if (vdso && (__u64)vdso == p.vm_start)
			return RC_VMA_SPECIAL;
		return RC_VMA_ANON;
	}
	return file_kind(p.file, name, 32);
}

/* Do the 8 bytes before addr end in a call instruction (addr is a return address)? As endsWithCall() in injection-linux.ts. */
static __always_inline bool ends_with_call(const __u8 *b)
{
#if defined(__TARGET_ARCH_x86)
	if (b[3] == 0xe8)
		return true; /* call rel32 */
	for (int k = 2; k <= 7; k++) {
		__u8 modrm, mod, rm;
		int len = 2;

		if (b[8 - k] != 0xff)
			continue;
		modrm = b[(9 - k) & 7];
		if (((modrm >> 3) & 7) != 2)
			continue;
		mod = modrm >> 6;
		rm = modrm & 7;
		if (mod != 3) {
			if (rm == 4) {
				len += 1;
				if (mod == 0 && k >= 3 && (b[(10 - k) & 7] & 7) == 5)
					len += 4;
			}
			if (mod == 0 && rm == 5)
				len += 4;
			if (mod == 1)
				len += 1;
			if (mod == 2)
				len += 4;
		}
		if (len == k)
			return true;
	}
	return false;
#elif defined(__TARGET_ARCH_arm64)
	__u32 insn = b[4] | (b[5] << 8) | (b[6] << 16) | ((__u32)b[7] << 24);

	return (insn & 0xfc000000) == 0x94000000 || (insn & 0xfffffc1f) == 0xd63f0000 ||
	       (insn & 0xfefff800) == 0xd63f0800;
#else
	return false;
#endif
}

/*
 * The injection verdict, as frameIndicators() + scanIndicators() in
 * src/enrich/injection-linux.ts decide it from /proc/<pid>/maps, but here, at
 * the connect, while the mappings are those the thread ran with. Unwound
 * frames innermost first: libc/loader and the kernel's pages are skipped, the
 * first other frame decides. If that says nothing, the scanned words from the
 * stack pointer up: the first one in executable memory (not libc) that ends
 * a call instruction decides.
 */
static long judge_frame(__u32 i, void *data)
{
	struct judge_ctx *c = data;
	struct rc_connect *e = c->e;
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 zero = 0;
	struct judge_scratch *s = bpf_map_lookup_elem(&judge_scratch_map, &zero);
	__u64 ip;
	__u8 k;

	if (!s || i >= RC_MAX_STACK_FRAMES || i >= e->stack_count)
		return 1;
	/* The compiler drops a plain mask (it knows i < 32); the verifier needs it. */
	asm volatile("%[i] &= 31" : [i] "+r"(i));
	ip = e->stack[i];
	if (ip == 0)
		return 0;
	k = addr_kind(task, ip, s->name);
	e->frame_kind[i] = k;
	if (k == RC_VMA_SPECIAL || k == RC_VMA_LIBC)
		return 0;
	if (k == RC_VMA_NONE) {
		e->verdict = RC_VERDICT_UNDECIDED;
	} else if (k == RC_VMA_ANON || k == RC_VMA_MEMFD || k == RC_VMA_DELETED) {
		e->verdict = RC_VERDICT_FRAME;
		e->offending_index = i;
		e->offending_kind = k;
		e->offending_addr = ip;
		if (k != RC_VMA_ANON)
			__builtin_memcpy(e->offending_name, s->name, sizeof(e->offending_name));
	}
	/* else own code, or a broken unwind into data: clean */
	return 1;
}

static long judge_word(__u32 i, void *data)
{
	struct judge_ctx *c = data;
	struct rc_connect *e = c->e;
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 zero = 0;
	struct judge_scratch *s = bpf_map_lookup_elem(&judge_scratch_map, &zero);
	__u64 w;
	__u8 k;

	if (!s || i >= RC_STACK_SCAN_WORDS || i >= e->scan_count)
		return 1;
	asm volatile("%[i] &= 15" : [i] "+r"(i));
	w = e->scan[i];
	if (w < 4096 || w > 0x00007fffffffffffULL)
		return 0; /* not a user address */
	k = addr_kind(task, w, s->name);
	e->scan_kind[i] = k;
	if (k == RC_VMA_NONE || k == RC_VMA_NOEXEC || k == RC_VMA_SPECIAL || k == RC_VMA_LIBC)
		return 0;
	if (bpf_probe_read_user(s->before, 8, (void *)(w - 8)) != 0 || !ends_with_call(s->before))
		return 0;
	if (k == RC_VMA_FILE)
		return 1;
	e->verdict = RC_VERDICT_RETURN;
	e->offending_index = i;
	e->offending_kind = k;
	e->offending_addr = w;
	if (k != RC_VMA_ANON)
		__builtin_memcpy(e->offending_name, s->name, sizeof(e->offending_name));
	return 1;
}

/*
 * The injection verdict, as frameIndicators() + scanIndicators() in
 * src/enrich/injection-linux.ts decide it from /proc/<pid>/maps, but here, at
 * the connect, while the mappings are those the thread ran with. Unwound
 * frames innermost first: libc/loader and the kernel's pages are skipped, the
 * first other frame decides. If that finds nothing, the scanned words from
 * the stack pointer up: the first one in executable memory (not libc) that
 * ends a call instruction decides. bpf_loop (5.17+, as bpf_find_vma) keeps
 * the verifier's work to one pass per callback.
 */
static __always_inline void judge_stack(struct rc_connect *e)
{
	struct judge_ctx c = { .e = e };

	e->verdict = RC_VERDICT_CLEAN;
	bpf_loop(RC_MAX_STACK_FRAMES, judge_frame, &c, 0);
	if (e->verdict == RC_VERDICT_FRAME)
		return;
	bpf_loop(RC_STACK_SCAN_WORDS, judge_word, &c, 0);
}

#define PT_PTRACED_ 0x00000001

/* A tracer of the connecting thread, else of its group leader (tracing is per thread). */
static __always_inline void fill_tracer(struct rc_connect *e, struct task_struct *task)
{
	struct task_struct *t = task;
	struct task_struct *tracer;
	struct file *exe;
	__u8 k;

	if (!(BPF_CORE_READ(t, ptrace) & PT_PTRACED_)) {
		t = BPF_CORE_READ(task, group_leader);
		if (!(BPF_CORE_READ(t, ptrace) & PT_PTRACED_))
			return;
	}
	tracer = BPF_CORE_READ(t, parent);
	e->tracer_pid = BPF_CORE_READ(tracer, tgid);
	exe = BPF_CORE_READ(tracer, mm, exe_file);
	if (!exe)
		return;
	k = file_kind(exe, e->tracer_exe, sizeof(e->tracer_exe));
	if (k == RC_VMA_MEMFD || k == RC_VMA_DELETED)
		e->flags |= RC_CONNECT_F_TRACER_ODD_EXE;
}


/*
 * The image's memfd/deleted state, the tracer and the stack verdict. Not
 * inlined: the UDP programs call emit_connect up to four times each.
 */
static __noinline void connect_verdicts(struct rc_connect *e, struct task_struct *task, struct file *exe)
{
	__u32 zero = 0;
	struct judge_scratch *js = bpf_map_lookup_elem(&judge_scratch_map, &zero);

	if (!e || !task || !js)
		return;
	fill_tracer(e, task);
	if (exe) {
		__u8 k = file_kind(exe, js->name, sizeof(js->name));

		if (k == RC_VMA_MEMFD)
			e->flags |= RC_CONNECT_F_EXE_MEMFD;
		else if (k == RC_VMA_DELETED)
			e->flags |= RC_CONNECT_F_EXE_DELETED;
	}
	if (cfg_find_vma && !(e->flags & RC_CONNECT_F_KERNEL_THREAD) &&
	    bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_find_vma)) {
		judge_stack(e);
		e->flags |= RC_CONNECT_F_JUDGED;
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
	connect_verdicts(e, task, exe);

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

/* The message header read from user memory: per CPU, not on the stack (the stack verdict needs the room). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct user_msghdr);
} msghdr_scratch SEC(".maps");

/* sendmsg(fd, msg, flags) */
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int sys_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	__u32 zero = 0;
	struct user_msghdr *mh = bpf_map_lookup_elem(&msghdr_scratch, &zero);

	if (!mh || bpf_probe_read_user(mh, sizeof(*mh), (const void *)ctx->args[1]))
		return 0;
	on_udp_send(ctx, (long)ctx->args[0], mh->msg_name, mh->msg_namelen);
	return 0;
}

#define SENDMMSG_SCAN 4

struct mmsg_walk {
	void *ctx;
	struct mmsghdr *vec;
	unsigned long vlen;
	long fd;
};

static long mmsg_step(__u32 i, void *data)
{
	struct mmsg_walk *w = data;
	__u32 zero = 0;
	struct user_msghdr *mh = bpf_map_lookup_elem(&msghdr_scratch, &zero);
	void *name;

	if (!mh || i >= w->vlen)
		return 1;
	if (bpf_probe_read_user(mh, sizeof(*mh), &w->vec[i & (SENDMMSG_SCAN - 1)].msg_hdr))
		return 1;
	name = mh->msg_name;
	on_udp_send(w->ctx, w->fd, name, mh->msg_namelen);
	return name ? 0 : 1; /* connected socket: one peer for the whole vector */
}

/* sendmmsg(fd, msgvec, vlen, flags): the first SENDMMSG_SCAN destinations. */
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int sys_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	struct mmsg_walk w = {
		.ctx = ctx,
		.vec = (struct mmsghdr *)ctx->args[1],
		.vlen = ctx->args[2],
		.fd = (long)ctx->args[0],
	};

	/* One message per callback: four inlined copies of the stack verdict were too much for the verifier. */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop)) {
		bpf_loop(SENDMMSG_SCAN, mmsg_step, &w, 0);
		return 0;
	}
	mmsg_step(0, &w); /* kernels before 5.17: the first message only */
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

/* ---- exec ------------------------------------------------------------------ */

struct inode___ctime_sec {
	time64_t i_ctime_sec;
	u32 i_ctime_nsec;
} __attribute__((preserve_access_index));

struct inode___i_ctime_old {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___i_ctime_older {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

static __always_inline __s64 inode_ctime_ns(struct inode *ino)
{
	if (bpf_core_field_exists(struct inode___ctime_sec, i_ctime_sec)) {
		struct inode___ctime_sec *i = (void *)ino;

		return BPF_CORE_READ(i, i_ctime_sec) * 1000000000LL + BPF_CORE_READ(i, i_ctime_nsec);
	}
	if (bpf_core_field_exists(struct inode___i_ctime_old, __i_ctime)) {
		struct inode___i_ctime_old *i = (void *)ino;

		return BPF_CORE_READ(i, __i_ctime.tv_sec) * 1000000000LL + BPF_CORE_READ(i, __i_ctime.tv_nsec);
	}
	{
		struct inode___i_ctime_older *i = (void *)ino;

		return BPF_CORE_READ(i, i_ctime.tv_sec) * 1000000000LL + BPF_CORE_READ(i, i_ctime.tv_nsec);
	}
}

#define PATH_MASK_ (RC_EXEC_PATH_MAX - 1)

/*
 * The file's path, as d_path() would give it from the root of the mount tree:
 * the dentry chain walked up, crossing mount points, written backwards into
 * rec->path. A pseudo file (a memfd) has no chain: "/" + its name.
 */
struct path_walk {
	struct rc_kernel_exec *rec;
	struct dentry *d;
	struct mount *mnt;
	__u32 off;
	bool any;
};

static __always_inline bool put_name(struct path_walk *w, struct dentry *d)
{
	struct qstr q = BPF_CORE_READ(d, d_name);
	__u32 len = q.len & 255;

	if (len + 1 >= w->off)
		return false;
	w->off -= len;
	bpf_probe_read_kernel(w->rec->path + (w->off & PATH_MASK_), len, q.name);
	w->off--;
	w->rec->path[w->off & PATH_MASK_] = '/';
	w->any = true;
	return true;
}

static long path_step(__u32 i, void *data)
{
	struct path_walk *w = data;
	struct dentry *d = w->d;
	struct mount *mnt = w->mnt;
	struct dentry *root = BPF_CORE_READ(mnt, mnt.mnt_root);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);

	if (d == root || d == parent) {
		struct mount *mp = BPF_CORE_READ(mnt, mnt_parent);

		if (mp == mnt || d != root) {
			/* The root of the tree, or a pseudo file (a memfd): "/" + its name if nothing was written. */
			if (!w->any && d == parent && d != root)
				put_name(w, d);
			return 1;
		}
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mp;
		return 0;
	}
	if (!put_name(w, d)) {
		w->rec->body.flags |= RC_EXEC_F_PATH_TRUNCATED;
		return 1;
	}
	w->d = parent;
	if (i == RC_EXEC_PATH_DEPTH - 1)
		w->rec->body.flags |= RC_EXEC_F_PATH_TRUNCATED;
	return 0;
}

/*
 * The file's path, as d_path() would give it from the root of the mount tree:
 * the dentry chain walked up, crossing mount points, written backwards into
 * rec->path.
 */
static __always_inline void exec_path(struct rc_kernel_exec *rec, struct file *f)
{
	struct vfsmount *vm = BPF_CORE_READ(f, f_path.mnt);
	struct path_walk w = {
		.rec = rec,
		.d = BPF_CORE_READ(f, f_path.dentry),
		.mnt = container_of(vm, struct mount, mnt),
		.off = RC_EXEC_PATH_MAX,
		.any = false,
	};

	bpf_loop(RC_EXEC_PATH_DEPTH, path_step, &w, 0);
	if (!w.any) {
		w.off--;
		rec->path[w.off & PATH_MASK_] = '/';
	}
	rec->path_off = w.off & PATH_MASK_;
	rec->body.path_len = RC_EXEC_PATH_MAX - (w.off & PATH_MASK_);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct rc_kernel_exec *rec;
	struct file *f = BPF_CORE_READ(bprm, file);
	struct inode *ino;
	__u64 ug = bpf_get_current_uid_gid();
	__u32 tgid = BPF_CORE_READ(p, tgid);
	__u8 one = 1;
	__u64 as, ae, n;
	char name[16];
	__u8 k;

	if (!cfg_exec_events || !f)
		return 0;
	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		count(RC_CNT_RINGBUF_DROPS);
		return 0;
	}
	/* Only the head is cleared: the path and args are sent by length. */
	__builtin_memset(rec, 0, sizeof(rec->hdr) + sizeof(rec->body) + 8);
	rec->hdr.type = RC_REC_EXEC;
	rec->body.boot_ns = bpf_ktime_get_boot_ns();
	rec->body.proc_start_boot_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	rec->body.pid = tgid;
	rec->body.old_tid = old_pid;
	rec->body.ppid = BPF_CORE_READ(p, real_parent, tgid);
	rec->body.uid = (__u32)ug;
	rec->body.gid = ug >> 32;
	ino = BPF_CORE_READ(f, f_path.dentry, d_inode);
	rec->body.exe_ino = BPF_CORE_READ(ino, i_ino);
	rec->body.exe_dev = BPF_CORE_READ(ino, i_sb, s_dev);
	rec->body.ctime_ns = inode_ctime_ns(ino);
	rec->body.nlink = BPF_CORE_READ(ino, __i_nlink);
	rec->body.image_fd = -1;
	k = file_kind(f, name, sizeof(name));
	if (k == RC_VMA_MEMFD)
		rec->body.flags |= RC_EXEC_F_MEMFD;
	else if (k == RC_VMA_DELETED)
		rec->body.flags |= RC_EXEC_F_DELETED;
	bpf_probe_read_kernel_str(rec->body.comm, sizeof(rec->body.comm), p->comm);
	/* The walk needs bpf_loop (5.17+); older kernels: no path (the helper reads /proc/<pid>/exe). */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop))
		exec_path(rec, f);

	/* The new image's arguments, on its own stack (p is current here). */
	as = BPF_CORE_READ(p, mm, arg_start);
	ae = BPF_CORE_READ(p, mm, arg_end);
	n = ae > as ? ae - as : 0;
	if (n > RC_EXEC_ARGS_MAX) {
		n = RC_EXEC_ARGS_MAX;
		rec->body.flags |= RC_EXEC_F_ARGS_TRUNCATED;
	}
	if (n > 0 && bpf_probe_read_user(rec->args, n & (RC_EXEC_ARGS_MAX - 1 | RC_EXEC_ARGS_MAX), (void *)as) == 0)
		rec->body.args_len = n;

	bpf_ringbuf_submit(rec, 0);
	count(RC_CNT_EVENTS);
	/* Its exit is reported too: the helper then lets go of the image. */
	if (cfg_exit_events)
		bpf_map_update_elem(&reported_tgids, &tgid, &one, BPF_ANY);
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
