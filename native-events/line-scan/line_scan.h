// line_scan.h - the output layout of the native line scanner (line_scan.c).
// The addon exports it whole as `layout` (line_scan.c, from these macros), and
// src/sources/replay/fast/scanned-slots.ts, the TypeScript declaration, refuses
// an addon whose layout differs from its own in any slot, kind or flag.
#ifndef RARECON_LINE_SCAN_H
#define RARECON_LINE_SCAN_H

/* Int32 slots a line takes in the lines array. */
#define LS_STRIDE 12
#define LS_START 0
#define LS_END 1
#define LS_KIND 2
#define LS_HOST 3
#define LS_ORG 4
#define LS_SHA 5
#define LS_IP 6
#define LS_PORT 7
#define LS_NAME 8
#define LS_FLAGS 9
#define LS_LOCAL_IP 10
#define LS_RESERVED 11

#define LS_KIND_DECLINED 0
#define LS_KIND_CONNECTION 1
#define LS_KIND_TOO_LONG 2
#define LS_KIND_NUL 3

#define LS_FLAG_UDP 1
#define LS_FLAG_INBOUND 2
#define LS_FLAG_INJECTED 4

/* An accepted line can introduce at most this many new strings (host, org, sha, ip, hostname, local ip). */
#define LS_MAX_NEW_PER_LINE 6

#endif
