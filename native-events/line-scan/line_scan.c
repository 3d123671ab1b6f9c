// line_scan.c - a native scanner for rarecon NDJSON chunks (N-API addon,
// loaded by src/sources/replay/fast/native-scan.ts).
//
// It splits a chunk of bytes into lines as read-lines.ts does and, for each
// line in the plain shape of a `connection` record, extracts only what
// scoring needs: interned string ids and numbers. It mirrors the JavaScript
// fast path (src/sources/replay/ndjson-fast.ts, json-bytes.ts) rule for rule,
// and declines any line it is not sure about: the JavaScript path then parses
// that line as before. Accepting a line the fast path would refuse is the one
// thing it must never do, so every doubtful case declines (see DECLINES).
//
// Strings are reported raw, as written (no trim, no IP normalisation): the
// wrapper decodes and checks each distinct id once.
//
// Most lines are read without the parser: the last line it accepted is kept as
// a shape (its bytes and where its values were), and a line with the same bytes
// outside its values, whose values pass the checks the parser made at those
// places, is read as that one was (shape_match). Anything else goes to the
// parser, whose accepted line becomes the new shape.
//
// DECLINES beyond the JavaScript fast path (it would read these lines):
// records other than `connection`; an `answers` key; a `\` escape in an
// extracted string (host.id, host.org, process.sha256, remote.ip,
// remote.hostname, local.ip), in a key or in an enum value; a sha256 that is
// not exactly 64 lower-case hex digits; a string `time` or `startTime`; a
// number with a sign, fraction or exponent, or more than 15 digits, in time,
// pid, tid, port, startTime or parent.pid; a time or startTime after
// 9999-12-31 (the JavaScript reader makes that line a bad-value error).

#define NAPI_VERSION 8
#include <node_api.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "line_scan.h"

// ---------------------------------------------------------------------------
// JSON cursor (json-bytes.ts)

/* Name tables whose next key is guessed, and the most names one holds. */
#define N_TABLES 11
#define MAX_NAMES 12

/*
 * Writers emit keys in a fixed order: per table, the name that followed each
 * one last time is tried first (json-bytes.ts keyTable does the same). Only a
 * hint: a wrong guess costs a few compares, never a different answer.
 */
typedef struct {
  uint8_t succ[N_TABLES][MAX_NAMES];
  uint8_t prev[N_TABLES];
} Guess;

/* A value the parser read: a string's contents or a number's digits, and how it was checked. */
#define V_STRING 0
#define V_NUMBER 1 /* an integer checked against max (cuint) */
#define V_ANY_NUMBER 2 /* any JSON number, only checked (cnumber_skip) */
#define MAX_VALUES 96

typedef struct {
  uint32_t s, e;
  uint8_t kind;
  bool hex64; /* checked by lower_hex64 (a sha256) */
  uint64_t max;
} Value;

/* Where the parser notes the values of the line it reads (see Shape). */
typedef struct {
  Value v[MAX_VALUES];
  int n;
  bool unusable; /* an unknown key, or more values than fit */
  int time, port; /* the values that are the record's time and remote port, -1 if none */
} Notes;

typedef struct {
  const uint8_t *b;
  size_t i;
  size_t end;
  Guess *g;
  Notes *notes; /* NULL: not noting */
} Cur;

static inline void note(Cur *c, size_t s, size_t e, uint8_t kind, uint64_t max) {
  Notes *n = c->notes;
  if (n == NULL) return;
  if (n->n == MAX_VALUES) {
    n->unusable = true;
    return;
  }
  n->v[n->n++] = (Value){(uint32_t)s, (uint32_t)e, kind, false, max};
}

#define NONE SIZE_MAX
/* Deeper unknown values decline, as json-bytes.ts MAX_SKIP_DEPTH. */
#define MAX_SKIP_DEPTH 32
/* Longer integers would need Number()'s rounding: decline them. */
#define MAX_DIGITS 15
#define MAX_PID 4294967295ull
#define MAX_PORT 65535ull
/* 9999-12-31T23:59:59.999Z (model/records.ts MAX_EVENT_TIME_MS): a later time is a bad-value line, which JS reports. */
#define MAX_TIME 253402300799999ull

typedef struct {
  size_t s;
  size_t e;
} Span;

/* What scoring needs from an accepted line. */
typedef struct {
  Span host, org, sha, ip, name, lip;
  double time;
  uint32_t port;
  int32_t flags;
} Rec;

/*
 * A key or enum value. The name is stored zero-padded so spells() can compare
 * it 8 bytes at a time; m0 and m1 mask the bytes of those two words that are
 * the name's (a name longer than 23 bytes does not compile).
 */
typedef struct {
  char name[24];
  size_t len;
  uint64_t m0, m1;
} Name;

#define WORD_MASK(n) ((n) >= 8 ? ~0ull : ((1ull << (8 * ((n) & 7))) - 1))

typedef struct {
  const Name *names;
  int n;
  int table;  // index into Guess
} Keys;

#define N(s) {s, sizeof(s) - 1, WORD_MASK(sizeof(s) - 1), (sizeof(s) - 1) <= 8 ? 0 : WORD_MASK(sizeof(s) - 9)}

/* Whitespace as json-bytes.ts next() skips it; the next byte, or -1 at the end. */
static inline int cnext(Cur *c) {
  while (c->i < c->end) {
    uint8_t ch = c->b[c->i];
    // Above the space: not whitespace (one compare for the usual case, compact JSON).
    if (ch > ' ' || (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')) return ch;
    c->i++;
  }
  return -1;
}

static inline bool cexpect(Cur *c, int ch) {
  if (cnext(c) != ch) return false;
  c->i++;
  return true;
}

/* After a member: 1 when a comma was read, 0 at `close`, -1 for anything else. */
static inline int cmore(Cur *c, int close) {
  int ch = cnext(c);
  c->i++;
  if (ch == ',') return 1;
  if (ch == close) return 0;
  return -1;
}

static inline bool is_hex(uint8_t ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/*
 * The string at the cursor: its contents bytes[s, e) and whether it holds an
 * escape. Refuses raw bytes < 0x20 or >= 0x80 (as stringEnd) and escapes
 * JSON.parse would refuse (json-bytes.ts validates escaped strings with it).
 */
static inline uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Nonzero when one of the 8 bytes of w is a quote, a backslash, < 0x20 or >= 0x80 (may flag bytes after it too). */
static inline uint64_t special8(uint64_t w) {
  uint64_t q = w ^ (ONES * '"');
  uint64_t bs = w ^ (ONES * '\\');
  return ((q - ONES) & ~q) | ((bs - ONES) & ~bs) | ((w - ONES * 0x20) & ~w) | w;
}

#if defined(__SSE2__)
/* Bit k set when byte k of p[0, 16) is a quote, a backslash, < 0x20 or >= 0x80 (a signed compare catches both). */
static inline unsigned special16(const uint8_t *p) {
  __m128i v = _mm_loadu_si128((const __m128i *)p);
  __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                             _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
  return (unsigned)_mm_movemask_epi8(hit);
}
#endif

/* The first byte of b[j, end) that is a quote, a backslash, < 0x20 or >= 0x80; end if none. */
static inline size_t special_at(const uint8_t *b, size_t j, size_t end) {
#if defined(__SSE2__)
  for (; j + 16 <= end; j += 16) {
    unsigned m = special16(b + j);
    if (m != 0) return j + (size_t)__builtin_ctz(m);
  }
#endif
  while (j + 8 <= end && (special8(rd64(b + j)) & HIGHS) == 0) j += 8;
  for (; j < end; j++) {
    uint8_t ch = b[j];
    if (ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x80) return j;
  }
  return end;
}

static bool cstring(Cur *c, size_t *s, size_t *e, bool *esc) {
  if (cnext(c) != '"') return false;
  const uint8_t *b = c->b;
  size_t end = c->end;
  bool escaped = false;
  for (size_t j = c->i + 1; j < end; j++) {
    // Plain bytes skipped in blocks: most of a line is string contents.
    j = special_at(b, j, end);
    if (j >= end) break;
    uint8_t ch = b[j];
    if (ch == '"') {
      *s = c->i + 1;
      *e = j;
      *esc = escaped;
      note(c, c->i + 1, j, V_STRING, 0);
      c->i = j + 1;
      return true;
    }
    if (ch == '\\') {
      escaped = true;
      if (j + 1 >= end) return false;
      switch (b[j + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          j++;
          break;
        case 'u':
          if (j + 5 >= end || !is_hex(b[j + 2]) || !is_hex(b[j + 3]) || !is_hex(b[j + 4]) || !is_hex(b[j + 5])) return false;
          j += 5;
          break;
        default:
          return false;
      }
    } else if (ch < 0x20 || ch >= 0x80) {
      return false;
    }
  }
  return false;
}

/* A string checked and skipped (escapes allowed). */
static inline bool cstring_any(Cur *c) {
  size_t s, e;
  bool esc;
  return cstring(c, &s, &e, &esc);
}

/* 1 when `null` is at the cursor (consumed), 0 for another value, -1 for a bad literal. */
static inline int cisnull(Cur *c) {
  if (cnext(c) != 'n') return 0;
  if (c->i + 4 > c->end || memcmp(c->b + c->i, "null", 4) != 0) return -1;
  c->i += 4;
  return 1;
}

static bool cliteral(Cur *c, const char *word, size_t len) {
  if (c->i + len > c->end || memcmp(c->b + c->i, word, len) != 0) return false;
  c->i += len;
  return true;
}

/* true or false: 1 or 0; -1 otherwise. */
static inline int cbool(Cur *c) {
  int ch = cnext(c);
  if (ch == 't') return cliteral(c, "true", 4) ? 1 : -1;
  if (ch == 'f') return cliteral(c, "false", 5) ? 0 : -1;
  return -1;
}

/* The byte at i (-1 past the end), and the one after advancing i: macros over the locals b, end and i. */
#define AT(k) ((k) < end ? (int)b[k] : -1)
#define NEXT_AT() (++i < end ? (int)b[i] : -1)
#define DIGIT(ch) ((ch) >= '0' && (ch) <= '9')

/* Any JSON number, checked against the grammar and skipped (json-bytes.ts number()). */
static bool cnumber_skip(Cur *c) {
  cnext(c);
  const uint8_t *b = c->b;
  size_t end = c->end;
  size_t i = c->i;
  int ch = AT(i);
  if (ch == '-') ch = NEXT_AT();
  if (ch == '0') {
    ch = NEXT_AT();
  } else if (ch >= '1' && ch <= '9') {
    do ch = NEXT_AT();
    while (DIGIT(ch));
  } else {
    return false;
  }
  if (ch == '.') {
    ch = NEXT_AT();
    if (!DIGIT(ch)) return false;
    do ch = NEXT_AT();
    while (DIGIT(ch));
  }
  if (ch == 'e' || ch == 'E') {
    ch = NEXT_AT();
    if (ch == '+' || ch == '-') ch = NEXT_AT();
    if (!DIGIT(ch)) return false;
    do ch = NEXT_AT();
    while (DIGIT(ch));
  }
  note(c, c->i, i, V_ANY_NUMBER, 0);
  c->i = i;
  return true;
}

/*
 * A plain non-negative integer of at most 15 digits, no larger than `max`.
 * Signs, fractions and exponents decline though the fast path reads some of
 * them (443.0, -0): they are never written so, and declining is safe.
 */
static bool cuint(Cur *c, uint64_t max, uint64_t *out) {
  cnext(c);
  const uint8_t *b = c->b;
  size_t end = c->end;
  size_t i = c->i;
  int ch = AT(i);
  uint64_t v = 0;
  if (ch == '0') {
    ch = NEXT_AT();
  } else if (ch >= '1' && ch <= '9') {
    size_t first = i;
    do {
      v = v * 10 + (uint64_t)(ch - '0');
      ch = NEXT_AT();
    } while (DIGIT(ch) && i - first < MAX_DIGITS);
    if (DIGIT(ch)) return false;
  } else {
    return false;
  }
  if (ch == '.' || ch == 'e' || ch == 'E' || v > max) return false;
  note(c, c->i, i, V_NUMBER, max);
  c->i = i;
  *out = v;
  return true;
}

/* An unknown value of any kind, checked and skipped (json-bytes.ts skip()). */
static bool cskip(Cur *c, int depth) {
  if (depth > MAX_SKIP_DEPTH) return false;
  int ch = cnext(c);
  if (ch == '"') return cstring_any(c);
  if (ch == '{') {
    c->i++;
    if (cnext(c) == '}') {
      c->i++;
      return true;
    }
    for (;;) {
      if (!cstring_any(c) || !cexpect(c, ':') || !cskip(c, depth + 1)) return false;
      int m = cmore(c, '}');
      if (m < 0) return false;
      if (m == 0) return true;
    }
  }
  if (ch == '[') {
    c->i++;
    if (cnext(c) == ']') {
      c->i++;
      return true;
    }
    for (;;) {
      if (!cskip(c, depth + 1)) return false;
      int m = cmore(c, ']');
      if (m < 0) return false;
      if (m == 0) return true;
    }
  }
  if (ch == 't' || ch == 'f') return cbool(c) >= 0;
  if (ch == 'n') return cisnull(c) == 1;
  return cnumber_skip(c);
}

#define KEY_BAD (-2)
#define KEY_UNKNOWN (-1)

/* bytes[start, ...) spell `nm` and its closing quote follows (then it holds no escape). */
static inline bool spells(const Cur *c, size_t start, const Name *nm) {
  size_t len = nm->len;
  if (start + len >= c->end || c->b[start + len] != '"') return false;
  const uint8_t *p = c->b + start;
  const uint8_t *w = (const uint8_t *)nm->name;
  // Two masked words where the line has 16 bytes left (almost always): names are at most 16 bytes here.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // The masks cover a word's first bytes, its low ones on a little-endian machine.
  if (len <= 16 && start + 16 <= c->end) return (((rd64(p) ^ rd64(w)) & nm->m0) | ((rd64(p + 8) ^ rd64(w + 8)) & nm->m1)) == 0;
#endif
  return memcmp(p, w, len) == 0;
}

/*
 * Index in `t` of the string at the cursor, written exactly so; KEY_UNKNOWN
 * for another plain string, KEY_BAD for a bad or escaped one (a key or enum
 * value spelled with escapes declines, as in json-bytes.ts key() and choice()).
 */
static int cname(Cur *c, const Keys *t) {
  if (cnext(c) != '"') return KEY_BAD;
  size_t start = c->i + 1;
  uint8_t *prev = &c->g->prev[t->table];
  uint8_t *succ = &c->g->succ[t->table][*prev];
  int guess = *succ;
  int k = -1;
  if (spells(c, start, &t->names[guess])) {
    k = guess;
  } else {
    for (int j = 0; j < t->n; j++) {
      if (j != guess && spells(c, start, &t->names[j])) {
        k = j;
        *succ = (uint8_t)j;
        break;
      }
    }
  }
  if (k < 0) {
    size_t s, e;
    bool esc;
    if (!cstring(c, &s, &e, &esc) || esc) return KEY_BAD;
    // A line with an unknown key is no shape to match others by: another name there may be a known key.
    if (c->notes != NULL) c->notes->unusable = true;
    return KEY_UNKNOWN;
  }
  c->i = start + t->names[k].len + 1;
  *prev = (uint8_t)k;
  return k;
}

/* A key and its colon: its index, KEY_UNKNOWN, or KEY_BAD. */
static inline int ckey(Cur *c, const Keys *t) {
  int k = cname(c, t);
  if (k == KEY_BAD || !cexpect(c, ':')) return KEY_BAD;
  return k;
}

/* An enum value written exactly (choice()): its index, or -1. */
static inline int cchoice(Cur *c, const Keys *t) {
  int k = cname(c, t);
  return k < 0 ? -1 : k;
}

/* `{` of an object that may be null: -1 bad, 0 null, 1 empty, 2 has members. */
static inline int copen(Cur *c) {
  int n = cisnull(c);
  if (n != 0) return n < 0 ? -1 : 0;
  if (!cexpect(c, '{')) return -1;
  if (cnext(c) == '}') {
    c->i++;
    return 1;
  }
  return 2;
}

/* A nullable string that is extracted: no escapes. 1 set, 0 null (span NONE), -1 bad. */
static inline int cspan(Cur *c, Span *sp) {
  int n = cisnull(c);
  if (n < 0) return -1;
  if (n > 0) {
    sp->s = NONE;
    return 0;
  }
  bool esc;
  if (!cstring(c, &sp->s, &sp->e, &esc) || esc) return -1;
  return 1;
}

/* A nullable string that is only checked. */
static inline bool cnullstr(Cur *c) {
  int n = cisnull(c);
  if (n != 0) return n > 0;
  return cstring_any(c);
}

/* A nullable integer in [0, max]: 1 set, 0 null, -1 bad. */
static inline int cnulluint(Cur *c, uint64_t max, uint64_t *v) {
  int n = cisnull(c);
  if (n != 0) return n > 0 ? 0 : -1;
  return cuint(c, max, v) ? 1 : -1;
}

/* A nullable array of strings; *count its length (0 for null). */
static bool cnullstrs(Cur *c, uint32_t *count) {
  *count = 0;
  int n = cisnull(c);
  if (n != 0) return n > 0;
  if (!cexpect(c, '[')) return false;
  if (cnext(c) == ']') {
    c->i++;
    return true;
  }
  for (;;) {
    if (!cstring_any(c)) return false;
    (*count)++;
    int m = cmore(c, ']');
    if (m < 0) return false;
    if (m == 0) return true;
  }
}

/* A JSON time as a plain integer: a string time declines (RFC 3339 parsing stays in JS). */
static inline bool ctime_ms(Cur *c, double *out) {
  if (cnext(c) == '"') return false;
  uint64_t v;
  if (!cuint(c, MAX_TIME, &v)) return false;
  *out = (double)v;
  return true;
}

/* A known key a second time declines (JSON.parse would keep the last). */
#define SEEN(mask, k)                            \
  do {                                           \
    if (((mask) & (1u << (k))) != 0) return false; \
    (mask) |= 1u << (k);                         \
  } while (0)

static const Name HOST_KEYS_NAMES[] = {N("id"), N("org"), N("name")};
static const Keys HOST_KEYS = {HOST_KEYS_NAMES, sizeof HOST_KEYS_NAMES / sizeof HOST_KEYS_NAMES[0], 0};

static bool read_host(Cur *c, Rec *r) {
  if (copen(c) != 2) return false;  // null or {} lack the required id
  unsigned mask = 0;
  r->host.s = NONE;
  r->org.s = NONE;
  for (;;) {
    int k = ckey(c, &HOST_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      if (k == 0) {
        if (cspan(c, &r->host) < 0) return false;
      } else if (k == 1) {
        if (cspan(c, &r->org) < 0) return false;
      } else if (!cnullstr(c)) {
        return false;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) break;
  }
  return r->host.s != NONE;
}

static const Name SIGNER_STATUSES_NAMES[] = {N("valid"), N("invalid"), N("unsigned"), N("unknown")};
static const Keys SIGNER_STATUSES = {SIGNER_STATUSES_NAMES, sizeof SIGNER_STATUSES_NAMES / sizeof SIGNER_STATUSES_NAMES[0], 1};
static const Name SIGNER_KEYS_NAMES[] = {N("status"), N("subject"), N("vendor")};
static const Keys SIGNER_KEYS = {SIGNER_KEYS_NAMES, sizeof SIGNER_KEYS_NAMES / sizeof SIGNER_KEYS_NAMES[0], 2};

static bool read_signer(Cur *c) {
  int o = copen(c);
  if (o < 0) return false;
  if (o < 2) return true;
  unsigned mask = 0;
  for (;;) {
    int k = ckey(c, &SIGNER_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      if (k == 0) {
        int n = cisnull(c);
        if (n < 0 || (n == 0 && cchoice(c, &SIGNER_STATUSES) < 0)) return false;
      } else if (!cnullstr(c)) {
        return false;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) return true;
  }
}

static const Name INJECTION_KEYS_NAMES[] = {N("injected"), N("indicators")};
static const Keys INJECTION_KEYS = {INJECTION_KEYS_NAMES, sizeof INJECTION_KEYS_NAMES / sizeof INJECTION_KEYS_NAMES[0], 3};

/* *injected as the fast path computes it: injected ?? indicators.length > 0; a null object is not injected. */
static bool read_injection(Cur *c, bool *injected) {
  *injected = false;
  int o = copen(c);
  if (o < 0) return false;
  if (o < 2) return true;
  unsigned mask = 0;
  int flag = -1;
  uint32_t count = 0;
  for (;;) {
    int k = ckey(c, &INJECTION_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      if (k == 0) {
        int n = cisnull(c);
        if (n < 0) return false;
        if (n == 0 && (flag = cbool(c)) < 0) return false;
      } else if (!cnullstrs(c, &count)) {
        return false;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) break;
  }
  *injected = flag >= 0 ? flag == 1 : count > 0;
  return true;
}

static const Name PARENT_KEYS_NAMES[] = {N("pid"), N("path"), N("cmdline")};
static const Keys PARENT_KEYS = {PARENT_KEYS_NAMES, sizeof PARENT_KEYS_NAMES / sizeof PARENT_KEYS_NAMES[0], 4};

static bool read_parent(Cur *c) {
  int o = copen(c);
  if (o < 0) return false;
  if (o < 2) return true;
  unsigned mask = 0;
  for (;;) {
    int k = ckey(c, &PARENT_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      if (k == 0) {
        uint64_t v;
        if (cnulluint(c, MAX_PID, &v) < 0) return false;
      } else if (!cnullstr(c)) {
        return false;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) return true;
  }
}

static const Name PROCESS_KEYS_NAMES[] = {
    N("pid"),     N("tid"),     N("startTime"), N("path"), N("sha256"),           N("signer"),
    N("injection"), N("cmdline"), N("user"),      N("parent"), N("unusualLibraries"),
};
static const Keys PROCESS_KEYS = {PROCESS_KEYS_NAMES, sizeof PROCESS_KEYS_NAMES / sizeof PROCESS_KEYS_NAMES[0], 5};

/* High bit of each byte of w that is >= n; w's bytes must be < 0x80 (cstring checked that), n <= 0x80. */
#define GE8(w, n) (((w) + ONES * (0x80 - (n))) & HIGHS)

/* Exactly 64 lower-case hex digits (upper case declines: the fast path lower-cases it into a new string). */
static bool lower_hex64(const uint8_t *p, size_t len) {
  if (len != 64) return false;
  uint64_t bad = 0;
  for (size_t j = 0; j < 64; j += 8) {
    uint64_t w = rd64(p + j);
    uint64_t digit = GE8(w, '0') & ~GE8(w, '9' + 1);
    uint64_t hex = GE8(w, 'a') & ~GE8(w, 'f' + 1);
    bad |= (digit | hex) ^ HIGHS;
  }
  return bad == 0;
}

/* The value just noted was a sha256 checked by lower_hex64: a matching line's must be checked too. */
static inline void note_hex64(Cur *c) {
  if (c->notes != NULL && c->notes->n > 0) c->notes->v[c->notes->n - 1].hex64 = true;
}

static bool read_process(Cur *c, Rec *r) {
  if (copen(c) != 2) return false;  // null or {} lack the required pid
  unsigned mask = 0;
  bool pid_set = false;
  r->sha.s = NONE;
  for (;;) {
    int k = ckey(c, &PROCESS_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      uint64_t v;
      bool inj;
      uint32_t count;
      double ms;
      int n;
      switch (k) {
        case 0:
          n = cnulluint(c, MAX_PID, &v);
          if (n < 0) return false;
          pid_set = n == 1;
          break;
        case 1:
          if (cnulluint(c, MAX_PID, &v) < 0) return false;
          break;
        case 2:
          n = cisnull(c);
          if (n < 0 || (n == 0 && !ctime_ms(c, &ms))) return false;
          break;
        case 4:
          n = cspan(c, &r->sha);
          if (n < 0 || (n == 1 && !lower_hex64(c->b + r->sha.s, r->sha.e - r->sha.s))) return false;
          if (n == 1) note_hex64(c);
          break;
        case 5:
          if (!read_signer(c)) return false;
          break;
        case 6:
          if (!read_injection(c, &inj)) return false;
          if (inj) r->flags |= LS_FLAG_INJECTED;
          break;
        case 9:
          if (!read_parent(c)) return false;
          break;
        case 10:
          if (!cnullstrs(c, &count)) return false;
          break;
        default:  // path, cmdline, user
          if (!cnullstr(c)) return false;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) break;
  }
  return pid_set;
}

static const Name ENDPOINT_KEYS_NAMES[] = {N("ip"), N("port"), N("hostname")};
static const Keys ENDPOINT_KEYS = {ENDPOINT_KEYS_NAMES, sizeof ENDPOINT_KEYS_NAMES / sizeof ENDPOINT_KEYS_NAMES[0], 6};

/*
 * remote {ip, port, hostname} or local {ip, port} (its hostname only checked).
 * *present false for null. ip and port are required, as the fast path has it.
 */
static bool read_endpoint(Cur *c, bool remote, bool *present, Span *ip, uint32_t *port, Span *name) {
  int o = copen(c);
  if (o < 0) return false;
  *present = o > 0;
  if (o == 0) return true;
  if (o == 1) return false;
  unsigned mask = 0;
  bool port_set = false;
  ip->s = NONE;
  if (name != NULL) name->s = NONE;
  for (;;) {
    int k = ckey(c, &ENDPOINT_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      if (k == 0) {
        if (cspan(c, ip) < 0) return false;
      } else if (k == 1) {
        uint64_t v = 0;
        int n = cnulluint(c, MAX_PORT, &v);
        if (n < 0) return false;
        port_set = n == 1;
        *port = (uint32_t)v;
        if (remote && n == 1 && c->notes != NULL) c->notes->port = c->notes->n - 1;
      } else if (remote) {
        if (cspan(c, name) < 0) return false;
      } else if (!cnullstr(c)) {
        return false;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) break;
  }
  return port_set && ip->s != NONE;
}

static const Name RECORD_TYPES_NAMES[] = {N("dns"), N("connection"), N("process")};
static const Keys RECORD_TYPES = {RECORD_TYPES_NAMES, sizeof RECORD_TYPES_NAMES / sizeof RECORD_TYPES_NAMES[0], 7};
static const Name PROTOCOLS_NAMES[] = {N("tcp"), N("udp")};
static const Keys PROTOCOLS = {PROTOCOLS_NAMES, sizeof PROTOCOLS_NAMES / sizeof PROTOCOLS_NAMES[0], 8};
static const Name DIRECTIONS_NAMES[] = {N("outbound"), N("inbound")};
static const Keys DIRECTIONS = {DIRECTIONS_NAMES, sizeof DIRECTIONS_NAMES / sizeof DIRECTIONS_NAMES[0], 9};
static const Name TOP_KEYS_NAMES[] = {
    N("type"),   N("time"),  N("host"),  N("process"), N("protocol"), N("direction"),
    N("remote"), N("local"), N("query"), N("answers"), N("sha256"),   N("path"),
};
static const Keys TOP_KEYS = {TOP_KEYS_NAMES, sizeof TOP_KEYS_NAMES / sizeof TOP_KEYS_NAMES[0], 10};

enum { K_TYPE, K_TIME, K_HOST, K_PROCESS, K_PROTOCOL, K_DIRECTION, K_REMOTE, K_LOCAL, K_QUERY, K_ANSWERS, K_SHA256, K_PATH };

/* True when bytes[start, end) is a plain connection record the fast path reads; fills *r. */
static bool read_record(Cur *c, Rec *r) {
  if (copen(c) != 2) return false;
  unsigned mask = 0;
  bool present;
  uint32_t unused_port;
  Span sha;
  r->flags = 0;
  r->lip.s = NONE;
  for (;;) {
    int k = ckey(c, &TOP_KEYS);
    if (k == KEY_BAD) return false;
    if (k == KEY_UNKNOWN) {
      if (!cskip(c, 0)) return false;
    } else {
      SEEN(mask, k);
      int n;
      switch (k) {
        case K_TYPE:
          if (cchoice(c, &RECORD_TYPES) != 1) return false;  // dns and process records stay in JS
          break;
        case K_TIME:
          if (!ctime_ms(c, &r->time)) return false;
          if (c->notes != NULL) c->notes->time = c->notes->n - 1;
          break;
        case K_HOST:
          if (!read_host(c, r)) return false;
          break;
        case K_PROCESS:
          if (!read_process(c, r)) return false;
          break;
        case K_PROTOCOL:
          n = cchoice(c, &PROTOCOLS);
          if (n < 0) return false;
          if (n == 1) r->flags |= LS_FLAG_UDP;
          break;
        case K_DIRECTION:
          n = cisnull(c);
          if (n < 0) return false;
          if (n == 0) {
            n = cchoice(c, &DIRECTIONS);
            if (n < 0) return false;
            if (n == 1) r->flags |= LS_FLAG_INBOUND;
          }
          break;
        case K_REMOTE:
          if (!read_endpoint(c, true, &present, &r->ip, &r->port, &r->name) || !present) return false;
          break;
        case K_LOCAL:
          if (!read_endpoint(c, false, &present, &r->lip, &unused_port, NULL)) return false;
          if (!present) r->lip.s = NONE;
          break;
        case K_QUERY:
        case K_PATH:
          if (!cnullstr(c)) return false;
          break;
        case K_ANSWERS:
          return false;  // a dns field: such a line is not a plain connection
        case K_SHA256:
          n = cspan(c, &sha);
          if (n < 0 || (n == 1 && !lower_hex64(c->b + sha.s, sha.e - sha.s))) return false;
          if (n == 1) note_hex64(c);
          break;
      }
    }
    int m = cmore(c, '}');
    if (m < 0) return false;
    if (m == 0) break;
  }
  const unsigned required = (1u << K_TYPE) | (1u << K_TIME) | (1u << K_HOST) | (1u << K_PROCESS) | (1u << K_PROTOCOL) | (1u << K_REMOTE);
  return cnext(c) == -1 && (mask & required) == required;
}

// ---------------------------------------------------------------------------
// Intern table: distinct strings -> ids 0, 1, 2 ... in first-seen order.

/* A probe compares hash and length, then the bytes at off: all in the slot, one cache line. */
typedef struct {
  uint32_t hash;
  int32_t id;  // -1: empty
  uint32_t len;
  uint32_t off;
} Slot;

/* The arena is addressed with 32 bits; the wrapper resets far below that (64 MiB). */
#define MAX_ARENA UINT32_MAX

typedef struct {
  Slot *slots;
  uint32_t mask;
  uint8_t *arena;
  size_t arena_len, arena_cap;
  uint32_t count;
} Intern;

/*
 * The shape of the last line the parser accepted: its bytes, where its values
 * were and what they mean. Lines of one writer share their keys, order and
 * spacing, so most lines have the same bytes outside their values: such a line
 * is read by comparing those bytes and checking each value as the parser did
 * at that place (see shape_match), without parsing it.
 */
typedef struct {
  bool ok;
  uint8_t *bytes;
  size_t len, cap;
  Notes at; /* the values, offsets from the line's start */
  /* Value index of host, org, sha, ip, name and local ip (-1: none). */
  int field[LS_MAX_NEW_PER_LINE];
  int32_t flags;
} Shape;

typedef struct {
  Intern t;
  Guess guess;
  Notes notes;
  Shape shape;
} Scanner;

/* Notes the shape of the line data[start, end) the parser just accepted into *r (or forgets the shape). */
static void shape_learn(Shape *sh, const Notes *notes, const uint8_t *data, size_t start, size_t end, const Rec *r) {
  sh->ok = false;
  if (notes->unusable || notes->time < 0 || notes->port < 0) return;
  size_t len = end - start;
  if (len > sh->cap) {
    size_t cap = sh->cap == 0 ? 1024 : sh->cap;
    while (cap < len) cap *= 2;
    uint8_t *bytes = realloc(sh->bytes, cap);
    if (bytes == NULL) return;
    sh->bytes = bytes;
    sh->cap = cap;
  }
  memcpy(sh->bytes, data + start, len);
  sh->len = len;
  sh->at = *notes;
  for (int k = 0; k < sh->at.n; k++) {
    Value *v = &sh->at.v[k];
    v->s -= (uint32_t)start;
    v->e -= (uint32_t)start;
    // A number other than plain digits (a sign, a fraction) would make every later line miss: no shape.
    if (v->kind == V_ANY_NUMBER)
      for (uint32_t j = v->s; j < v->e; j++)
        if (!DIGIT(sh->bytes[j])) return;
  }
  const Span spans[LS_MAX_NEW_PER_LINE] = {r->host, r->org, r->sha, r->ip, r->name, r->lip};
  for (int f = 0; f < LS_MAX_NEW_PER_LINE; f++) {
    sh->field[f] = -1;
    if (spans[f].s == NONE) continue;
    for (int k = 0; k < sh->at.n; k++) {
      if (sh->at.v[k].kind == V_STRING && sh->at.v[k].s == spans[f].s - start) {
        sh->field[f] = k;
        break;
      }
    }
    if (sh->field[f] < 0) return;
  }
  sh->flags = r->flags;
  sh->ok = true;
}

/*
 * Reads data[start, end) into *r as the parser would when the line has the
 * shape's bytes outside its values and each value passes the check the parser
 * made there: a string without escapes or bytes it refuses, an integer of the
 * same grammar and bounds, a sha256 of 64 lower-case hex digits. False (and *r
 * unusable) otherwise: the parser then reads the line.
 */
static bool shape_match(const Shape *sh, const uint8_t *data, size_t start, size_t end, Rec *r) {
  size_t vs[MAX_VALUES], ve[MAX_VALUES];
  uint64_t num[MAX_VALUES];
  size_t pos = start;
  size_t prev = 0;
  for (int k = 0; k < sh->at.n; k++) {
    const Value *v = &sh->at.v[k];
    size_t lit = v->s - prev;
    if (end - pos < lit || memcmp(data + pos, sh->bytes + prev, lit) != 0) return false;
    pos += lit;
    vs[k] = pos;
    if (v->kind == V_STRING) {
      pos = special_at(data, pos, end);
      if (pos >= end || data[pos] != '"') return false;
    } else {
      if (pos >= end || !DIGIT(data[pos])) return false;
      uint64_t x = 0;
      if (data[pos] == '0') {
        pos++;
      } else {
        size_t first = pos;
        do x = x * 10 + (uint64_t)(data[pos++] - '0');
        while (pos < end && DIGIT(data[pos]) && (v->kind == V_ANY_NUMBER || pos - first < MAX_DIGITS));
      }
      if (pos < end && DIGIT(data[pos])) return false;  // "01", or more digits than cuint takes
      if (v->kind == V_NUMBER && x > v->max) return false;
      num[k] = x;
    }
    ve[k] = pos;
    if (v->hex64 && !lower_hex64(data + vs[k], pos - vs[k])) return false;
    prev = v->e;
  }
  size_t tail = sh->len - prev;
  if (end - pos != tail || memcmp(data + pos, sh->bytes + prev, tail) != 0) return false;
  Span *spans[LS_MAX_NEW_PER_LINE] = {&r->host, &r->org, &r->sha, &r->ip, &r->name, &r->lip};
  for (int f = 0; f < LS_MAX_NEW_PER_LINE; f++) {
    int k = sh->field[f];
    spans[f]->s = k < 0 ? NONE : vs[k];
    spans[f]->e = k < 0 ? NONE : ve[k];
  }
  r->time = (double)num[sh->at.time];
  r->port = (uint32_t)num[sh->at.port];
  r->flags = sh->flags;
  return true;
}

static uint32_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
  while (n >= 8) {
    h = (h ^ rd64(p)) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t t = 0;
    memcpy(&t, p, n);
    h = (h ^ t) * 0x94d049bb133111ebull;
    h ^= h >> 29;
  }
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return (uint32_t)h;
}

#define INITIAL_SLOTS 1024u

static void intern_free(Intern *t) {
  free(t->slots);
  free(t->arena);
  memset(t, 0, sizeof *t);
}

static bool intern_init(Intern *t) {
  memset(t, 0, sizeof *t);
  t->slots = malloc(INITIAL_SLOTS * sizeof(Slot));
  if (t->slots == NULL) return false;
  for (uint32_t k = 0; k < INITIAL_SLOTS; k++) t->slots[k].id = -1;
  t->mask = INITIAL_SLOTS - 1;
  return true;
}

static size_t intern_held(const Intern *t) {
  return (size_t)(t->mask + 1) * sizeof(Slot) + t->arena_cap;
}

static bool intern_grow_slots(Intern *t) {
  uint32_t n = (t->mask + 1) * 2;
  Slot *slots = malloc((size_t)n * sizeof(Slot));
  if (slots == NULL) return false;
  for (uint32_t k = 0; k < n; k++) slots[k].id = -1;
  for (uint32_t j = 0; j <= t->mask; j++) {
    if (t->slots[j].id < 0) continue;
    uint32_t k = t->slots[j].hash & (n - 1);
    while (slots[k].id >= 0) k = (k + 1) & (n - 1);
    slots[k] = t->slots[j];
  }
  free(t->slots);
  t->slots = slots;
  t->mask = n - 1;
  return true;
}

static inline bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    if (rd64(a + j) != rd64(b + j)) return false;
  for (; j < n; j++)
    if (a[j] != b[j]) return false;
  return true;
}

/* The id of bytes p[0, n) whose hash is h; *added true when it is new. -1 when out of memory. */
static int32_t intern(Intern *t, const uint8_t *p, size_t n, uint32_t h, bool *added) {
  uint32_t k = h & t->mask;
  for (;;) {
    Slot *s = &t->slots[k];
    if (s->id < 0) break;
    if (s->hash == h && s->len == n && same_bytes(t->arena + s->off, p, n)) {
      *added = false;
      return s->id;
    }
    k = (k + 1) & t->mask;
  }
  if (t->count == INT32_MAX || t->arena_len + n > MAX_ARENA) return -1;
  if (t->arena_len + n > t->arena_cap) {
    size_t cap = t->arena_cap == 0 ? 65536 : t->arena_cap;
    while (cap < t->arena_len + n) cap *= 2;
    uint8_t *arena = realloc(t->arena, cap);
    if (arena == NULL) return -1;
    t->arena = arena;
    t->arena_cap = cap;
  }
  uint32_t id = t->count++;
  memcpy(t->arena + t->arena_len, p, n);
  t->slots[k] = (Slot){h, (int32_t)id, (uint32_t)n, (uint32_t)t->arena_len};
  t->arena_len += n;
  // Half full at most: probes stay short.
  if ((uint64_t)t->count * 2 > (uint64_t)t->mask + 1 && !intern_grow_slots(t)) return -1;
  *added = true;
  return (int32_t)id;
}

// ---------------------------------------------------------------------------
// The scan

typedef struct {
  int32_t *news;
  size_t count;
} NewStrings;

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/*
 * ids[k] for each span of an accepted line (-1 for NONE), appending new ones
 * to `out`. The table and its bytes are touched in rounds of prefetches
 * first: a big table misses the cache, and six misses in parallel cost about
 * one. False when out of memory.
 */
static bool ids_of(Intern *t, const uint8_t *data, const Span *sp, int32_t *ids, NewStrings *out) {
  uint32_t h[LS_MAX_NEW_PER_LINE];
  for (int k = 0; k < LS_MAX_NEW_PER_LINE; k++) {
    if (sp[k].s == NONE) continue;
    h[k] = hash_bytes(data + sp[k].s, sp[k].e - sp[k].s);
    PREFETCH(&t->slots[h[k] & t->mask]);
  }
  for (int k = 0; k < LS_MAX_NEW_PER_LINE; k++) {
    if (sp[k].s == NONE) continue;
    for (uint32_t j = h[k] & t->mask; t->slots[j].id >= 0; j = (j + 1) & t->mask) {
      if (t->slots[j].hash == h[k]) {
        PREFETCH(t->arena + t->slots[j].off);
        break;
      }
    }
  }
  for (int k = 0; k < LS_MAX_NEW_PER_LINE; k++) {
    if (sp[k].s == NONE) {
      ids[k] = -1;
      continue;
    }
    bool added;
    int32_t id = intern(t, data + sp[k].s, sp[k].e - sp[k].s, h[k], &added);
    if (id < 0) return false;
    if (added) {
      int32_t *o = out->news + out->count * 3;
      o[0] = id;
      o[1] = (int32_t)sp[k].s;
      o[2] = (int32_t)sp[k].e;
      out->count++;
    }
    ids[k] = id;
  }
  return true;
}

/*
 * Scans the lines of data[from, to) into lines/times. Returns false when out
 * of memory. *count lines were written, *next is just after the last one.
 */
static bool scan(Scanner *sc, const uint8_t *data, size_t from, size_t to, size_t max_line, int32_t *lines, double *times,
                 size_t cap_lines, NewStrings *news, size_t cap_news, size_t *count, size_t *next) {
  size_t pos = from;
  size_t n = 0;
  while (n < cap_lines && pos < to && news->count + LS_MAX_NEW_PER_LINE <= cap_news) {
    const uint8_t *nl = memchr(data + pos, '\n', to - pos);
    if (nl == NULL) break;
    size_t start = pos;
    size_t nlpos = (size_t)(nl - data);
    size_t end = nlpos > start && data[nlpos - 1] == '\r' ? nlpos - 1 : nlpos;
    int32_t *l = lines + n * LS_STRIDE;
    int32_t kind = LS_KIND_DECLINED;
    Rec r;
    // read-lines.ts measures a line before its CR is stripped.
    if (nlpos - start > max_line) {
      kind = LS_KIND_TOO_LONG;
    } else if (sc->shape.ok && shape_match(&sc->shape, data, start, end, &r)) {
      kind = LS_KIND_CONNECTION;  // (a NUL byte cannot match a shape: it is no digit, string byte or shape byte)
    } else if (memchr(data + start, 0, end - start) != NULL) {
      kind = LS_KIND_NUL;
    } else {
      Notes *notes = &sc->notes;
      notes->n = 0;
      notes->unusable = false;
      notes->time = notes->port = -1;
      Cur c = {data, start, end, &sc->guess, notes};
      if (read_record(&c, &r)) {
        kind = LS_KIND_CONNECTION;
        shape_learn(&sc->shape, notes, data, start, end, &r);
      }
    }
    l[LS_START] = (int32_t)start;
    l[LS_END] = (int32_t)end;
    l[LS_KIND] = kind;
    l[LS_RESERVED] = 0;
    if (kind == LS_KIND_CONNECTION) {
      // Ids are taken only for accepted lines: a declined line leaves none behind.
      const Span spans[LS_MAX_NEW_PER_LINE] = {r.host, r.org, r.sha, r.ip, r.name, r.lip};
      int32_t ids[LS_MAX_NEW_PER_LINE];
      if (!ids_of(&sc->t, data, spans, ids, news)) return false;
      l[LS_HOST] = ids[0];
      l[LS_ORG] = ids[1];
      l[LS_SHA] = ids[2];
      l[LS_IP] = ids[3];
      l[LS_PORT] = (int32_t)r.port;
      l[LS_NAME] = ids[4];
      l[LS_FLAGS] = r.flags;
      l[LS_LOCAL_IP] = ids[5];
      times[n] = r.time;
    } else {
      l[LS_HOST] = l[LS_ORG] = l[LS_SHA] = l[LS_IP] = l[LS_NAME] = l[LS_LOCAL_IP] = -1;
      l[LS_PORT] = l[LS_FLAGS] = 0;
      times[n] = 0;
    }
    n++;
    pos = nlpos + 1;
  }
  *count = n;
  *next = pos;
  return true;
}

// ---------------------------------------------------------------------------
// N-API glue

#define CHECK(call)                                           \
  do {                                                        \
    if ((call) != napi_ok) {                                  \
      napi_throw_error(env, NULL, "line_scan: " #call " failed"); \
      return NULL;                                            \
    }                                                         \
  } while (0)

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Scanner *sc = data;
  intern_free(&sc->t);
  free(sc->shape.bytes);
  free(sc);
}

static Scanner *scanner_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "line_scan: not a scanner");
    return NULL;
  }
  return p;
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  (void)info;
  Scanner *sc = calloc(1, sizeof *sc);
  if (sc == NULL || !intern_init(&sc->t)) {
    free(sc);
    napi_throw_error(env, NULL, "line_scan: out of memory");
    return NULL;
  }
  napi_value out;
  if (napi_create_external(env, sc, finalize, NULL, &out) != napi_ok) {
    intern_free(&sc->t);
    free(sc);
    napi_throw_error(env, NULL, "line_scan: cannot create the scanner");
    return NULL;
  }
  return out;
}

/* A typed array argument of the given type: its data and length in elements. */
static bool typed_arg(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  bool is;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, length, data, &ab, &offset) != napi_ok || type != want) {
    napi_throw_type_error(env, NULL, "line_scan: wrong typed array argument");
    return false;
  }
  return true;
}

static bool index_arg(napi_env env, napi_value v, double max, size_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= max) || d != (double)(size_t)d) {
    napi_throw_range_error(env, NULL, "line_scan: offset out of range");
    return false;
  }
  *out = (size_t)d;
  return true;
}

/* scan(scanner, bytes, from, to, maxLineBytes, lines: Int32Array, times: Float64Array, news: Int32Array, info: Float64Array) */
static napi_value js_scan(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, cbinfo, &argc, argv, NULL, NULL));
  if (argc < 9) {
    napi_throw_type_error(env, NULL, "line_scan: scan takes 9 arguments");
    return NULL;
  }
  Scanner *sc = scanner_arg(env, argv[0]);
  if (sc == NULL) return NULL;
  bool is;
  void *data;
  size_t len;
  if (napi_is_buffer(env, argv[1], &is) != napi_ok || !is || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "line_scan: bytes must be a Buffer");
    return NULL;
  }
  size_t from, to, max_line;
  // Offsets are reported as int32.
  if (!index_arg(env, argv[2], (double)INT32_MAX, &from) || !index_arg(env, argv[3], (double)INT32_MAX, &to) ||
      !index_arg(env, argv[4], 9007199254740991.0, &max_line))
    return NULL;
  if (from > to || to > len) {
    napi_throw_range_error(env, NULL, "line_scan: from/to outside the buffer");
    return NULL;
  }
  const uint8_t *bytes = data;
  if (to > from && bytes[to - 1] != '\n') {
    napi_throw_range_error(env, NULL, "line_scan: `to` must be just after a newline");
    return NULL;
  }
  void *lines, *times, *news, *info;
  size_t nlines, ntimes, nnews, ninfo;
  if (!typed_arg(env, argv[5], napi_int32_array, &lines, &nlines) || !typed_arg(env, argv[6], napi_float64_array, &times, &ntimes) ||
      !typed_arg(env, argv[7], napi_int32_array, &news, &nnews) || !typed_arg(env, argv[8], napi_float64_array, &info, &ninfo))
    return NULL;
  if (ninfo < 3) {
    napi_throw_range_error(env, NULL, "line_scan: info needs 3 slots");
    return NULL;
  }
  size_t cap = nlines / LS_STRIDE;
  if (ntimes < cap) cap = ntimes;
  NewStrings out = {news, 0};
  size_t count, next;
  if (!scan(sc, bytes, from, to, max_line, lines, times, cap, &out, nnews / 3, &count, &next)) {
    napi_throw_error(env, NULL, "line_scan: out of memory");
    return NULL;
  }
  double *inf = info;
  inf[0] = (double)count;
  inf[1] = (double)next;
  inf[2] = (double)out.count;
  return NULL;
}

static napi_value js_size(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, cbinfo, &argc, argv, NULL, NULL));
  Scanner *sc = scanner_arg(env, argc > 0 ? argv[0] : NULL);
  if (sc == NULL) return NULL;
  napi_value out;
  CHECK(napi_create_double(env, (double)sc->t.count, &out));
  return out;
}

static napi_value js_held_bytes(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, cbinfo, &argc, argv, NULL, NULL));
  Scanner *sc = scanner_arg(env, argc > 0 ? argv[0] : NULL);
  if (sc == NULL) return NULL;
  napi_value out;
  CHECK(napi_create_double(env, (double)intern_held(&sc->t), &out));
  return out;
}

static napi_value js_reset(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, cbinfo, &argc, argv, NULL, NULL));
  Scanner *sc = scanner_arg(env, argc > 0 ? argv[0] : NULL);
  if (sc == NULL) return NULL;
  intern_free(&sc->t);
  if (!intern_init(&sc->t)) {
    napi_throw_error(env, NULL, "line_scan: out of memory");
    return NULL;
  }
  return NULL;
}

// The layout of line_scan.h as the `layout` export, which the TypeScript side
// compares with its own declaration (scanned-slots.ts) before using the addon.

typedef struct {
  const char *name;
  int32_t value;
} LayoutEntry;

/* Every slot of a line, in offset order. */
static const LayoutEntry LAYOUT_SLOTS[] = {
    {"start", LS_START},
    {"end", LS_END},
    {"kind", LS_KIND},
    {"host", LS_HOST},
    {"org", LS_ORG},
    {"sha256", LS_SHA},
    {"ip", LS_IP},
    {"port", LS_PORT},
    {"hostname", LS_NAME},
    {"flags", LS_FLAGS},
    {"localIp", LS_LOCAL_IP},
    {"reserved", LS_RESERVED},
};
_Static_assert(sizeof LAYOUT_SLOTS / sizeof LAYOUT_SLOTS[0] == LS_STRIDE, "every slot of a line is named in LAYOUT_SLOTS");

static const LayoutEntry LAYOUT_KINDS[] = {
    {"declined", LS_KIND_DECLINED},
    {"connection", LS_KIND_CONNECTION},
    {"tooLong", LS_KIND_TOO_LONG},
    {"nul", LS_KIND_NUL},
};

static const LayoutEntry LAYOUT_FLAGS[] = {
    {"udp", LS_FLAG_UDP},
    {"inbound", LS_FLAG_INBOUND},
    {"injected", LS_FLAG_INJECTED},
};

static bool set_int(napi_env env, napi_value obj, const char *name, int32_t value) {
  napi_value v;
  return napi_create_int32(env, value, &v) == napi_ok && napi_set_named_property(env, obj, name, v) == napi_ok;
}

static bool set_entries(napi_env env, napi_value layout, const char *group, const LayoutEntry *entries, size_t n) {
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return false;
  for (size_t k = 0; k < n; k++)
    if (!set_int(env, obj, entries[k].name, entries[k].value)) return false;
  return napi_set_named_property(env, layout, group, obj) == napi_ok;
}

static napi_value layout_export(napi_env env) {
  napi_value layout;
  if (napi_create_object(env, &layout) != napi_ok) return NULL;
  if (!set_int(env, layout, "stride", LS_STRIDE) ||
      !set_entries(env, layout, "slots", LAYOUT_SLOTS, sizeof LAYOUT_SLOTS / sizeof LAYOUT_SLOTS[0]) ||
      !set_entries(env, layout, "kinds", LAYOUT_KINDS, sizeof LAYOUT_KINDS / sizeof LAYOUT_KINDS[0]) ||
      !set_entries(env, layout, "flags", LAYOUT_FLAGS, sizeof LAYOUT_FLAGS / sizeof LAYOUT_FLAGS[0]) ||
      !set_int(env, layout, "maxNewPerLine", LS_MAX_NEW_PER_LINE))
    return NULL;
  return layout;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"scan", NULL, js_scan, NULL, NULL, NULL, napi_default, NULL},
      {"size", NULL, js_size, NULL, NULL, NULL, napi_default, NULL},
      {"heldBytes", NULL, js_held_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"reset", NULL, js_reset, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value v;
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (napi_create_uint32(env, LS_STRIDE, &v) == napi_ok) napi_set_named_property(env, exports, "stride", v);
  // Without it the TypeScript side refuses the addon (and reads every line in JavaScript).
  napi_value layout = layout_export(env);
  if (layout != NULL) napi_set_named_property(env, exports, "layout", layout);
  return exports;
}
