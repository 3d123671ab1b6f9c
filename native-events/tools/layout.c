// SPDX-License-Identifier: MIT
/*
 * Prints the sizes, field offsets and constants of the wire contract as JSON.
 * test/sources/ebpf/wire.test.ts compiles and runs this, then compares the
 * output with src/sources/ebpf/wire.ts.
 */
#include <stddef.h>
#include <stdio.h>

#include "rarecon_events.h"

static int first_struct = 1;
static int first_field;

static void begin(const char *name, size_t size)
{
	printf("%s\n    \"%s\": {\"size\": %zu, \"offsets\": {", first_struct ? "" : ",", name, size);
	first_struct = 0;
	first_field = 1;
}

static void field(const char *name, size_t off)
{
	printf("%s\"%s\": %zu", first_field ? "" : ", ", name, off);
	first_field = 0;
}

static void end(void)
{
	printf("}}");
}

#define F(type, member, name) field(name, offsetof(struct type, member))

int main(void)
{
	printf("{\n  \"constants\": {\"magic\": %u, \"protocolVersion\": %d, \"maxFrameSize\": %u, "
	       "\"maxStackFrames\": %d, \"stackScanWords\": %d, \"dnsMaxPayload\": %d, \"commLen\": %d, "
	       "\"recHello\": %d, \"recConnect\": %d, \"recDns\": %d, \"recLoss\": %d, \"recExit\": %d, "
	       "\"kindTcpConnect\": %d, \"kindUdpConnect\": %d, \"kindUdpSend\": %d, "
	       "\"helloFlagTcp4\": %u, \"helloFlagTcp6\": %u, \"helloFlagUdp4\": %u, \"helloFlagUdp6\": %u, "
	       "\"helloFlagDns\": %u, \"helloFlagDnsTcp\": %u, \"helloFlagExit\": %u, \"helloFlagStackScan\": %u, "
	       "\"connectFlagKernelThread\": %u, \"dnsFlagTruncated\": %u, \"recExec\": %d, \"helloFlagExec\": %u, "
	       "\"helloFlagFindVma\": %u, \"helloFlagImageFds\": %u, \"connectFlagExeMemfd\": %u, "
	       "\"connectFlagExeDeleted\": %u, \"connectFlagJudged\": %u, \"connectFlagTracerOddExe\": %u, "
	       "\"execFlagMemfd\": %u, \"execFlagDeleted\": %u, \"execFlagSeeded\": %u, \"execFlagPathTruncated\": %u, "
	       "\"execFlagArgsTruncated\": %u, \"verdictFrame\": %d, \"verdictReturn\": %d, \"verdictUndecided\": %d, "
	       "\"vmaAnon\": %d, \"vmaMemfd\": %d, \"vmaDeleted\": %d, \"vmaSpecial\": %d, \"connectV1Size\": %d},\n",
	       RC_MAGIC, RC_PROTOCOL_VERSION, RC_MAX_FRAME_SIZE, RC_MAX_STACK_FRAMES, RC_STACK_SCAN_WORDS,
	       RC_DNS_MAX_PAYLOAD, RC_COMM_LEN, RC_REC_HELLO, RC_REC_CONNECT, RC_REC_DNS, RC_REC_LOSS, RC_REC_EXIT,
	       RC_KIND_TCP_CONNECT, RC_KIND_UDP_CONNECT, RC_KIND_UDP_SEND, RC_HELLO_F_TCP4, RC_HELLO_F_TCP6,
	       RC_HELLO_F_UDP4, RC_HELLO_F_UDP6, RC_HELLO_F_DNS, RC_HELLO_F_DNS_TCP, RC_HELLO_F_EXIT,
	       RC_HELLO_F_STACK_SCAN, RC_CONNECT_F_KERNEL_THREAD, RC_DNS_F_TRUNCATED, RC_REC_EXEC, RC_HELLO_F_EXEC,
	       RC_HELLO_F_FIND_VMA, RC_HELLO_F_IMAGE_FDS, RC_CONNECT_F_EXE_MEMFD, RC_CONNECT_F_EXE_DELETED,
	       RC_CONNECT_F_JUDGED, RC_CONNECT_F_TRACER_ODD_EXE, RC_EXEC_F_MEMFD, RC_EXEC_F_DELETED, RC_EXEC_F_SEEDED,
	       RC_EXEC_F_PATH_TRUNCATED, RC_EXEC_F_ARGS_TRUNCATED, RC_VERDICT_FRAME, RC_VERDICT_RETURN,
	       RC_VERDICT_UNDECIDED, RC_VMA_ANON, RC_VMA_MEMFD, RC_VMA_DELETED, RC_VMA_SPECIAL, RC_CONNECT_V1_SIZE);
	printf("  \"structs\": {");

	begin("frameHeader", sizeof(struct rc_frame_header));
	F(rc_frame_header, magic, "magic");
	F(rc_frame_header, version, "version");
	F(rc_frame_header, type, "type");
	F(rc_frame_header, length, "length");
	F(rc_frame_header, seq, "seq");
	end();

	begin("hello", sizeof(struct rc_hello));
	F(rc_hello, protocol_version, "protocolVersion");
	F(rc_hello, helper_pid, "helperPid");
	F(rc_hello, boot_to_realtime_ns, "bootToRealtimeNs");
	F(rc_hello, stack_frames, "stackFrames");
	F(rc_hello, stack_scan_words, "stackScanWords");
	F(rc_hello, udp_dedup_ms, "udpDedupMs");
	F(rc_hello, flags, "flags");
	F(rc_hello, max_stack_frames, "maxStackFrames");
	F(rc_hello, dns_max_payload, "dnsMaxPayload");
	F(rc_hello, kernel_release, "kernelRelease");
	F(rc_hello, helper_version, "helperVersion");
	end();

	begin("connect", sizeof(struct rc_connect));
	F(rc_connect, boot_ns, "bootNs");
	F(rc_connect, realtime_ns, "realtimeNs");
	F(rc_connect, proc_start_boot_ns, "procStartBootNs");
	F(rc_connect, pid, "pid");
	F(rc_connect, tid, "tid");
	F(rc_connect, ppid, "ppid");
	F(rc_connect, uid, "uid");
	F(rc_connect, gid, "gid");
	F(rc_connect, exe_dev, "exeDev");
	F(rc_connect, exe_ino, "exeIno");
	F(rc_connect, comm, "comm");
	F(rc_connect, family, "family");
	F(rc_connect, protocol, "protocol");
	F(rc_connect, kind, "kind");
	F(rc_connect, local_port, "localPort");
	F(rc_connect, remote_port, "remotePort");
	F(rc_connect, local_addr, "localAddr");
	F(rc_connect, remote_addr, "remoteAddr");
	F(rc_connect, netns_ino, "netnsIno");
	F(rc_connect, stack_err, "stackErr");
	F(rc_connect, stack_count, "stackCount");
	F(rc_connect, scan_count, "scanCount");
	F(rc_connect, flags, "flags");
	F(rc_connect, user_sp, "userSp");
	F(rc_connect, cgroup_id, "cgroupId");
	F(rc_connect, scan, "scan");
	F(rc_connect, stack, "stack");
	F(rc_connect, verdict, "verdict");
	F(rc_connect, offending_kind, "offendingKind");
	F(rc_connect, offending_index, "offendingIndex");
	F(rc_connect, tracer_pid, "tracerPid");
	F(rc_connect, offending_addr, "offendingAddr");
	F(rc_connect, frame_kind, "frameKind");
	F(rc_connect, scan_kind, "scanKind");
	F(rc_connect, offending_name, "offendingName");
	F(rc_connect, tracer_exe, "tracerExe");
	F(rc_connect, reserved, "reserved");
	end();

	begin("dns", sizeof(struct rc_dns));
	F(rc_dns, realtime_ns, "realtimeNs");
	F(rc_dns, boot_ns, "bootNs");
	F(rc_dns, family, "family");
	F(rc_dns, transport, "transport");
	F(rc_dns, flags, "flags");
	F(rc_dns, client_port, "clientPort");
	F(rc_dns, server_port, "serverPort");
	F(rc_dns, client_addr, "clientAddr");
	F(rc_dns, server_addr, "serverAddr");
	F(rc_dns, ifindex, "ifindex");
	F(rc_dns, payload_len, "payloadLen");
	F(rc_dns, orig_len, "origLen");
	end();

	begin("loss", sizeof(struct rc_loss));
	F(rc_loss, realtime_ns, "realtimeNs");
	F(rc_loss, kernel_events, "kernelEvents");
	F(rc_loss, ringbuf_drops, "ringbufDrops");
	F(rc_loss, udp_deduped, "udpDeduped");
	F(rc_loss, stack_errors, "stackErrors");
	F(rc_loss, dns_packets, "dnsPackets");
	F(rc_loss, dns_socket_drops, "dnsSocketDrops");
	F(rc_loss, dns_truncated, "dnsTruncated");
	F(rc_loss, dns_bad_packets, "dnsBadPackets");
	F(rc_loss, dns_tcp_skipped, "dnsTcpSkipped");
	F(rc_loss, frames_written, "framesWritten");
	F(rc_loss, bytes_written, "bytesWritten");
	end();

	begin("exit", sizeof(struct rc_exit));
	F(rc_exit, boot_ns, "bootNs");
	F(rc_exit, realtime_ns, "realtimeNs");
	F(rc_exit, proc_start_boot_ns, "procStartBootNs");
	F(rc_exit, pid, "pid");
	F(rc_exit, exit_code, "exitCode");
	F(rc_exit, comm, "comm");
	end();

	begin("exec", sizeof(struct rc_exec));
	F(rc_exec, boot_ns, "bootNs");
	F(rc_exec, realtime_ns, "realtimeNs");
	F(rc_exec, proc_start_boot_ns, "procStartBootNs");
	F(rc_exec, pid, "pid");
	F(rc_exec, old_tid, "oldTid");
	F(rc_exec, ppid, "ppid");
	F(rc_exec, uid, "uid");
	F(rc_exec, gid, "gid");
	F(rc_exec, exe_dev, "exeDev");
	F(rc_exec, exe_ino, "exeIno");
	F(rc_exec, ctime_ns, "ctimeNs");
	F(rc_exec, nlink, "nlink");
	F(rc_exec, flags, "flags");
	F(rc_exec, image_fd, "imageFd");
	F(rc_exec, image_errno, "imageErrno");
	F(rc_exec, path_len, "pathLen");
	F(rc_exec, args_len, "argsLen");
	F(rc_exec, comm, "comm");
	F(rc_exec, reserved, "reserved");
	end();

	printf("\n  }\n}\n");
	return 0;
}
