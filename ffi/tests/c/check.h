/* A tiny test harness: CHECK records a failure with its line and goes on;
 * DONE prints the closing "N passed, N failed" line and sets the exit code. */
#ifndef OTPENGINE_CHECK_H
#define OTPENGINE_CHECK_H

#include <stdio.h>
#include <string.h>

#include "otpengine.h"

static int checks_passed, checks_failed;

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (cond) {                                                             \
      checks_passed++;                                                      \
    } else {                                                                \
      checks_failed++;                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

#define CHECK_STATUS(call, expected)                                        \
  do {                                                                      \
    otp_status got_ = (call);                                               \
    if (got_ == (expected)) {                                               \
      checks_passed++;                                                      \
    } else {                                                                \
      checks_failed++;                                                      \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__,  \
              __LINE__, #call, (int)got_, otp_status_str(got_), #expected); \
    }                                                                       \
  } while (0)

/* Whether this thread's last error message contains `needle` (printed if not). */
static inline int last_error_contains(const char *needle) {
  char buf[512];
  otp_last_error(buf, sizeof buf);
  if (strstr(buf, needle) == NULL) {
    fprintf(stderr, "last error \"%s\" lacks \"%s\"\n", buf, needle);
    return 0;
  }
  return 1;
}

/* A code of the right shape that is not `code`. */
static inline void wrong_code(const char *code, char *out) {
  size_t n = strlen(code);
  for (size_t i = 0; i < n; i++) out[i] = code[i] == '9' ? '0' : (char)(code[i] + 1);
  out[n] = 0;
}

#define DONE()                                                              \
  do {                                                                      \
    printf("%d passed, %d failed\n", checks_passed, checks_failed);        \
    return checks_failed == 0 ? 0 : 1;                                      \
  } while (0)

#endif
