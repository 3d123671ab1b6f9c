// SPDX-License-Identifier: MIT
/*
 * udp_send - sends UDP datagrams in the ways a program can, so a test can
 * check which of them the sensor reports (and how often).
 *
 *   udp_send METHOD IP PORT COUNT
 *
 * METHOD  sendto       COUNT x sendto() with the address
 *         sendmsg      COUNT x sendmsg() with the address in msg_name
 *         sendmmsg     one sendmmsg() of COUNT messages with the address
 *         connect-send connect(), then COUNT x send() without an address
 *
 * Prints "udp_send pid=PID sent=N" and exits 0 (2 for bad usage).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, count, sent = 0;
	char payload[] = "rarecon-udp";

	if (argc != 5) {
		fprintf(stderr, "usage: udp_send sendto|sendmsg|sendmmsg|connect-send IP PORT COUNT\n");
		return 2;
	}
	count = atoi(argv[4]);
	if (count < 1 || count > 1024) {
		fprintf(stderr, "udp_send: COUNT must be 1..1024\n");
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
		fprintf(stderr, "udp_send: bad address %s\n", argv[2]);
		return 2;
	}
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}

	if (strcmp(argv[1], "sendto") == 0) {
		for (int i = 0; i < count; i++)
			sent += sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&ss, len) >= 0;
	} else if (strcmp(argv[1], "sendmsg") == 0) {
		for (int i = 0; i < count; i++) {
			struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
			struct msghdr mh = { .msg_name = &ss, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1 };

			sent += sendmsg(fd, &mh, 0) >= 0;
		}
	} else if (strcmp(argv[1], "sendmmsg") == 0) {
		static struct mmsghdr vec[1024];
		static struct iovec iov[1024];

		for (int i = 0; i < count; i++) {
			iov[i] = (struct iovec){ .iov_base = payload, .iov_len = sizeof(payload) };
			vec[i].msg_hdr = (struct msghdr){ .msg_name = &ss, .msg_namelen = len, .msg_iov = &iov[i],
							  .msg_iovlen = 1 };
		}
		sent = sendmmsg(fd, vec, (unsigned int)count, 0);
	} else if (strcmp(argv[1], "connect-send") == 0) {
		if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
			perror("connect");
			return 1;
		}
		for (int i = 0; i < count; i++)
			sent += send(fd, payload, sizeof(payload), 0) >= 0;
	} else {
		fprintf(stderr, "udp_send: unknown method %s\n", argv[1]);
		return 2;
	}
	printf("udp_send pid=%d sent=%d\n", getpid(), sent < 0 ? 0 : sent);
	close(fd);
	return 0;
}
