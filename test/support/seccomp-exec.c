/*
 * seccomp-exec: runs a command under a system call allow list, the way systemd
 * applies SystemCallFilter= with SystemCallErrorNumber=EPERM: every call not
 * named fails with EPERM, calls of other architectures are refused
 * (SystemCallArchitectures=native), and no_new_privs is set (NoNewPrivileges=).
 *
 *   seccomp-exec SYSCALL[,SYSCALL...] -- COMMAND [ARG...]
 *
 * Names this libseccomp does not know are skipped (systemd does the same).
 * Used by test/service/unit-sandbox.test.ts; built there with cc -lseccomp.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[2], "--") != 0) {
		fprintf(stderr, "usage: seccomp-exec SYSCALL[,SYSCALL...] -- COMMAND [ARG...]\n");
		return 1;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (ctx == NULL) {
		fprintf(stderr, "seccomp-exec: seccomp_init failed\n");
		return 1;
	}
	/* Only the native architecture (x32 and ia32 calls are killed by the kernel check). */
	seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	int allowed = 0, unknown = 0;
	char *list = strdup(argv[1]);
	for (char *name = strtok(list, ","); name != NULL; name = strtok(NULL, ",")) {
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR) {
			unknown++;
			continue;
		}
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) == 0) allowed++;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		perror("seccomp-exec: PR_SET_NO_NEW_PRIVS");
		return 1;
	}
	int rc = seccomp_load(ctx);
	if (rc != 0) {
		fprintf(stderr, "seccomp-exec: seccomp_load: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "seccomp-exec: %d system calls allowed (%d names unknown here), the rest fail with EPERM\n", allowed, unknown);
	execvp(argv[3], argv + 3);
	fprintf(stderr, "seccomp-exec: %s: %s\n", argv[3], strerror(errno));
	return 127;
}
