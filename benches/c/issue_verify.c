/* Per-call cost of otp_issue + otp_verify from C, the same workload as
 * `cargo run --release --example quickbench` (1,000 live 8-byte keys, limits off):
 * prints the median of five runs. Build with `make bench-c`. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otpengine.h"

#define KEYS 1000
#define ROUNDS 1000

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  static uint8_t keys[KEYS][8];
  static char codes[KEYS][16];
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < KEYS; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(keys[i], &x, 8);
  }
  double issue_ns[5], verify_ns[5];
  for (int run = 0; run < 5; run++) {
    otp_config c;
    otp_config_default(&c);
    c.resend_cooldown_ms = 0;
    c.max_issues_per_window = 0;
    c.max_failures_per_key = 0;
    otp_engine *e;
    if (otp_engine_new(&c, &e) != OTP_OK) return 1;
    double issue = 0, verify = 0;
    for (int r = 0; r < ROUNDS; r++) {
      double t0 = now_ns();
      for (int i = 0; i < KEYS; i++) otp_issue(e, keys[i], 8, NULL, 0, 0, codes[i], 16, NULL);
      double t1 = now_ns();
      for (int i = 0; i < KEYS; i++)
        if (otp_verify(e, keys[i], 8, codes[i], 6, NULL, 0, NULL) != OTP_OK) return 1;
      double t2 = now_ns();
      issue += t1 - t0;
      verify += t2 - t1;
    }
    issue_ns[run] = issue / (KEYS * ROUNDS);
    verify_ns[run] = verify / (KEYS * ROUNDS);
    otp_engine_free(e);
  }
  qsort(issue_ns, 5, sizeof(double), cmp);
  qsort(verify_ns, 5, sizeof(double), cmp);
  printf("C:    issue %4.0f ns, verify %4.0f ns (median of 5, 1000 live keys)\n", issue_ns[2], verify_ns[2]);
  return 0;
}
