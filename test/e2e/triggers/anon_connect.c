// SPDX-License-Identifier: MIT
/*
 * anon_connect - makes the kernel see a connect() whose user stack has a frame
 * in anonymous executable memory, the way injected code would.
 *
 *   anon_connect MODE IP PORT [LINGER_MS]
 *
 * MODE
 *   anon       copy a stub that issues the connect system call itself into an
 *              anonymous mapping (written RW, then made RX) and call it: the
 *              innermost user frame (the syscall return address) is in that mapping.
 *   anon-libc  the anonymous stub calls libc's connect(): the stub's return
 *              address sits on the stack just above libc's frame (found by the
 *              stack scan, not by frame-pointer unwinding through libc).
 *   normal     connect() from ordinary code, for contrast.
 *   unlink     as normal, after deleting its own file (as a dropper that
 *              covers its tracks does): the image has no name on disk.
 *
 * It exits right after the connect, or LINGER_MS later.
 *
 * Prints one line before connecting:
 *   anon_connect mode=MODE pid=PID tid=TID region=0xSTART-0xEND
 * (region=0x0-0x0 in normal mode) and one after it:
 *   anon_connect result=0|ERRNO
 * Exit status 0 whatever connect() returned (a refused connect still sent a
 * SYN), 2 for bad usage, 77 when MODE is unsupported on this architecture.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*connect_fn)(int fd, const struct sockaddr *addr, socklen_t len);

static size_t build_stub(uint8_t *code, int via_libc)
{
#if defined(__x86_64__)
	if (!via_libc) {
		/* mov eax, __NR_connect; syscall; ret  (arguments already in rdi, rsi, rdx) */
		const uint8_t stub[] = { 0xb8, SYS_connect, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3 };

		memcpy(code, stub, sizeof(stub));
		return sizeof(stub);
	} else {
		/* sub rsp, 8; movabs rax, connect; call rax; add rsp, 8; ret */
		uint64_t target = (uint64_t)(uintptr_t)&connect;
		size_t n = 0;

		code[n++] = 0x48, code[n++] = 0x83, code[n++] = 0xec, code[n++] = 0x08;
		code[n++] = 0x48, code[n++] = 0xb8;
		memcpy(code + n, &target, 8);
		n += 8;
		code[n++] = 0xff, code[n++] = 0xd0;
		code[n++] = 0x48, code[n++] = 0x83, code[n++] = 0xc4, code[n++] = 0x08;
		code[n++] = 0xc3;
		return n;
	}
#elif defined(__aarch64__)
	if (!via_libc) {
		/* mov x8, #__NR_connect; svc #0; ret */
		uint32_t stub[] = { 0xd2800008u | ((uint32_t)SYS_connect << 5), 0xd4000001u, 0xd65f03c0u };

		memcpy(code, stub, sizeof(stub));
		return sizeof(stub);
	} else {
		/* stp x29, x30, [sp, #-16]!; ldr x16, lit; blr x16; ldp x29, x30, [sp], #16; ret; lit: .quad connect */
		uint32_t stub[] = { 0xa9bf7bfdu, 0x58000070u, 0xd63f0200u, 0xa8c17bfdu, 0xd65f03c0u, 0 };
		uint64_t target = (uint64_t)(uintptr_t)&connect;

		/* The literal must be 8-byte aligned: it sits at offset 20 + 4 padding = 24. */
		stub[1] = 0x58000000u | (((24 - 4) / 4) << 5) | 16;
		memcpy(code, stub, 24);
		memcpy(code + 24, &target, 8);
		return 32;
	}
#else
	(void)code;
	(void)via_libc;
	return 0;
#endif
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, mode_anon, via_libc;
	long rc;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *region = NULL;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: anon_connect anon|anon-libc|normal|unlink IP PORT [LINGER_MS]\n");
		return 2;
	}
	mode_anon = strcmp(argv[1], "normal") != 0 && strcmp(argv[1], "unlink") != 0;
	via_libc = strcmp(argv[1], "anon-libc") == 0;
	if (mode_anon && !via_libc && strcmp(argv[1], "anon") != 0) {
		fprintf(stderr, "anon_connect: unknown mode %s\n", argv[1]);
		return 2;
	}

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, argv[2], &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)atoi(argv[3]));
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, argv[2], &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)atoi(argv[3]));
		len = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "anon_connect: bad address %s\n", argv[2]);
		return 2;
	}

	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}

	if (mode_anon) {
		size_t n;

		region = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		n = build_stub(region, via_libc);
		if (n == 0) {
			fprintf(stderr, "anon_connect: mode %s unsupported on this architecture\n", argv[1]);
			return 77;
		}
		__builtin___clear_cache((char *)region, (char *)region + n);
		if (mprotect(region, page, PROT_READ | PROT_EXEC) != 0) {
			perror("mprotect");
			return 1;
		}
	}

	if (strcmp(argv[1], "unlink") == 0) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n <= 0 || (self[n] = 0, unlink(self) != 0)) {
			perror("unlink");
			return 1;
		}
	}

	printf("anon_connect mode=%s pid=%d tid=%ld region=%p-%p\n", argv[1], getpid(), (long)syscall(SYS_gettid),
	       (void *)region, (void *)(region ? region + page : NULL));
	fflush(stdout);

	if (mode_anon) {
		rc = ((connect_fn)(void *)region)(fd, (struct sockaddr *)&ss, len);
		/* The raw stub returns -errno in a full register; libc's connect returns
		 * an int -1 (upper half of the register undefined) and sets errno. */
		if (via_libc)
			rc = (int)rc == -1 ? -errno : 0;
	} else {
		rc = connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
	}
	printf("anon_connect result=%ld\n", rc < 0 ? -rc : 0);
	fflush(stdout);
	close(fd);
	/* argv[4]: stay this many ms after the connect (a process user space can still read). */
	if (argc > 4)
		usleep((useconds_t)atoi(argv[4]) * 1000);
	return 0;
}
