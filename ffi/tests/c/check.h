/* A tiny test harness: CHECK records a failure with its line and goes on;
 * DONE prints the closing "N passed, N failed" line and sets the exit code. */
#ifndef OTPENGINE_CHECK_H
#define OTPENGINE_CHECK_H

#include <stdio.h>

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

#define DONE()                                                              \
  do {                                                                      \
    printf("%d passed, %d failed\n", checks_passed, checks_failed);        \
    return checks_failed == 0 ? 0 : 1;                                      \
  } while (0)

#endif
