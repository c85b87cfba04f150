/* 8 threads verify the same right code at the same moment: exactly one OTP_OK,
 * every round. Then threads hammer issue/verify on overlapping keys and the
 * engine's counters agree with what the threads saw. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers under -std=c11 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "otpengine.h"
#include "check.h"

#define THREADS 8
#define ROUNDS 300
#define HAMMERS 4
#define HAMMER_CALLS 5000

static otp_engine *engine;
static pthread_barrier_t barrier;
static char shared_code[16];
static char shared_key[32];
static otp_status results[THREADS];

static void *verify_same(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int round = 0; round < ROUNDS; round++) {
    pthread_barrier_wait(&barrier); /* the code is ready */
    results[id] = otp_verify(engine, (const uint8_t *)shared_key, strlen(shared_key), shared_code,
                             strlen(shared_code), NULL, 0, NULL);
    pthread_barrier_wait(&barrier); /* all have answered */
  }
  return NULL;
}

struct tally {
  unsigned long seed, issued, verified, other;
};

static void *hammer(void *arg) {
  struct tally *t = arg;
  char code[16], k[16];
  uint64_t x = 0x9E3779B97F4A7C15ull ^ t->seed;
  for (int i = 0; i < HAMMER_CALLS; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int n = snprintf(k, sizeof k, "k%u", (unsigned)(x % 32));
    if (otp_issue(engine, (const uint8_t *)k, (size_t)n, NULL, 0, 0, code, sizeof code, NULL) != OTP_OK) continue;
    t->issued++;
    /* Another thread may have replaced or consumed this key's code meanwhile. */
    if (otp_verify(engine, (const uint8_t *)k, (size_t)n, code, strlen(code), NULL, 0, NULL) == OTP_OK)
      t->verified++;
    else
      t->other++;
  }
  return NULL;
}

int main(void) {
  otp_config config;
  otp_config_default(&config);
  config.manual_clock = 1;
  config.resend_cooldown_ms = 0;
  config.max_issues_per_window = 0;
  config.max_failures_per_key = 0;
  CHECK_STATUS(otp_engine_new(&config, &engine), OTP_OK);

  pthread_t threads[THREADS];
  pthread_barrier_init(&barrier, NULL, THREADS + 1);
  for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, verify_same, (void *)(intptr_t)t);
  for (int round = 0; round < ROUNDS; round++) {
    snprintf(shared_key, sizeof shared_key, "user-%d", round);
    CHECK_STATUS(otp_issue(engine, (const uint8_t *)shared_key, strlen(shared_key), NULL, 0, 0, shared_code,
                           sizeof shared_code, NULL),
                 OTP_OK);
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    int ok = 0, not_found = 0;
    for (int t = 0; t < THREADS; t++) {
      ok += results[t] == OTP_OK;
      not_found += results[t] == OTP_NOT_FOUND;
    }
    CHECK(ok == 1 && not_found == THREADS - 1);
  }
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);

  otp_stats before;
  CHECK_STATUS(otp_engine_stats(engine, &before), OTP_OK);
  struct tally tallies[HAMMERS];
  pthread_t workers[HAMMERS];
  for (int t = 0; t < HAMMERS; t++) {
    memset(&tallies[t], 0, sizeof tallies[t]);
    tallies[t].seed = (unsigned long)t + 1;
    pthread_create(&workers[t], NULL, hammer, &tallies[t]);
  }
  unsigned long issued = 0, verified = 0, other = 0;
  for (int t = 0; t < HAMMERS; t++) {
    pthread_join(workers[t], NULL);
    issued += tallies[t].issued;
    verified += tallies[t].verified;
    other += tallies[t].other;
  }
  otp_stats after;
  CHECK_STATUS(otp_engine_stats(engine, &after), OTP_OK);
  CHECK(issued == HAMMERS * HAMMER_CALLS); /* no limits: every issue succeeds */
  CHECK(after.issued - before.issued == issued);
  CHECK(after.verified - before.verified == verified);
  /* The rest were mismatches (code replaced), burned codes, or not found (consumed). */
  unsigned long counted = (after.mismatched - before.mismatched) + (after.locked - before.locked);
  CHECK(counted <= other && verified > 0 && other > 0);
  otp_engine_free(engine);
  pthread_barrier_destroy(&barrier);
  DONE();
}
