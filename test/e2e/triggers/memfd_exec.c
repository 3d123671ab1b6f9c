// Runs a program from an anonymous memory file, the way fileless malware
// does: copy the binary into memfd_create() and fexecve() it, so the process
// image never has a name on disk.
//   memfd_exec <binary> [args...]
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <binary> [args...]\n", argv[0]);
    return 2;
  }
  int src = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (src < 0) {
    perror("open");
    return 1;
  }
  int mfd = memfd_create("rarecon-trigger", MFD_CLOEXEC);
  if (mfd < 0) {
    perror("memfd_create");
    return 1;
  }
  char buf[65536];
  ssize_t n;
  while ((n = read(src, buf, sizeof buf)) > 0) {
    if (write(mfd, buf, (size_t)n) != n) {
      perror("write");
      return 1;
    }
  }
  if (n < 0) {
    perror("read");
    return 1;
  }
  close(src);
  // argv[1] becomes argv[0] of the new image.
  fexecve(mfd, argv + 1, environ);
  perror("fexecve");
  return 1;
}
