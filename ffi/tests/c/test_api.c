/* Every status of every function of otpengine.h, on the manual clock. */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otpengine.h"
#include "check.h"

#define KEY(s) (const uint8_t *)(s), strlen(s)

static otp_engine *manual_engine(void (*tune)(otp_config *)) {
  otp_config config;
  otp_config_default(&config);
  config.manual_clock = 1;
  if (tune) tune(&config);
  otp_engine *engine = NULL;
  if (otp_engine_new(&config, &engine) != OTP_OK) {
    fprintf(stderr, "otp_engine_new failed\n");
    exit(2);
  }
  return engine;
}

static void no_limits(otp_config *c) {
  c->resend_cooldown_ms = 0;
  c->max_issues_per_window = 0;
  c->max_failures_per_key = 0;
}

static void test_defaults_and_version(void) {
  otp_config c;
  memset(&c, 0xff, sizeof c);
  otp_config_default(&c);
  CHECK(c.code_length == 6 && c.alphabet == OTP_ALPHABET_DIGITS && c.ttl_ms == 300000);
  CHECK(c.max_attempts == 5 && c.resend_cooldown_ms == 30000);
  CHECK(c.max_issues_per_window == 5 && c.issue_window_ms == 600000);
  CHECK(c.max_failures_per_key == 100 && c.lockout_ms == 3600000);
  CHECK(c.escalate_lockouts == 1 && c.max_lockout_ms == 2592000000ULL);
  CHECK(c.codes_per_key == 1 && c.capacity == 10000000 && c.shards == 0 && c.manual_clock == 0);
  otp_config_default(NULL); /* no-op, no crash */
  CHECK(strcmp(otp_version(), OTPENGINE_VERSION) == 0);
  CHECK(otp_abi_version() == OTPENGINE_ABI_VERSION);
  /* A memory engine never waits: a call timeout changes nothing for it. */
  otp_set_call_timeout_ms(1);
  otp_engine *quick = manual_engine(NULL);
  char quick_code[16];
  CHECK(otp_issue(quick, (const uint8_t *)"k", 1, NULL, 0, 0, quick_code, sizeof quick_code, NULL) == OTP_OK);
  otp_set_call_timeout_ms(0);
  otp_engine_free(quick);
}

static void test_status_strings(void) {
  for (int s = 0; s <= OTP_REPLAYED; s++) {
    const char *text = otp_status_str((otp_status)s);
    CHECK(text != NULL && strcmp(text, "unknown status") != 0);
  }
  CHECK(strcmp(otp_status_str(OTP_OK), "ok") == 0);
  CHECK(strcmp(otp_status_str((otp_status)42), "unknown status") == 0);
  CHECK(strcmp(otp_status_str((otp_status)-1), "unknown status") == 0);
}

static void test_engine_new_rejects_bad_config(void) {
  otp_config c;
  otp_engine *engine = (otp_engine *)(uintptr_t)0x1; /* must stay untouched */
  otp_config_default(&c);
  c.ttl_ms = 0;
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_INVALID_ARGUMENT);
  CHECK(engine == (otp_engine *)(uintptr_t)0x1);
  CHECK(last_error_contains("ttl_ms must be between 1000 and 86400000, got 0"));
  otp_config_default(&c);
  c.alphabet = 7;
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("alphabet"));
  otp_config_default(&c);
  c.shards = 3;
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("shards must be a power of two"));
  otp_config_default(&c);
  c.code_length = 11;
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("code_length must be between 4 and 10, got 11"));
  otp_config_default(&c);
  c.lockout_ms = 500;
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("lockout_ms"));
  otp_config_default(&c);
  c.max_lockout_ms = 1800000;
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("max_lockout_ms must be between 3600000 and 31536000000, got 1800000"));
  c.escalate_lockouts = 0; /* unused then */
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_OK);
  otp_engine_free(engine);
  engine = (otp_engine *)(uintptr_t)0x1;
  CHECK_STATUS(otp_engine_new(NULL, &engine), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_engine_new(&c, NULL), OTP_INVALID_ARGUMENT);
  otp_engine_free(NULL); /* no-op */
  CHECK_STATUS(otp_ping(NULL), OTP_INVALID_ARGUMENT);
}

static void test_last_error_truncates_like_snprintf(void) {
  otp_config c;
  otp_engine *engine = NULL;
  otp_config_default(&c);
  c.ttl_ms = 0;
  otp_engine_new(&c, &engine);
  size_t full = otp_last_error(NULL, 0);
  CHECK(full > 10);
  char small[8];
  memset(small, 'x', sizeof small);
  CHECK(otp_last_error(small, sizeof small) == full);
  CHECK(small[7] == 0 && strncmp(small, "ttl_ms ", 7) == 0);
  char one[1] = {'x'};
  CHECK(otp_last_error(one, 1) == full && one[0] == 0);
  /* A call that succeeds clears it. */
  otp_config_default(&c);
  CHECK_STATUS(otp_engine_new(&c, &engine), OTP_OK);
  CHECK(otp_last_error(NULL, 0) == 0);
  otp_engine_free(engine);
}

static void test_issue_and_verify(void) {
  otp_engine *e = manual_engine(no_limits);
  char code[16], other[16];
  otp_issued issued = {0, 0, {0}};
  uint32_t left = 99;
  CHECK_STATUS(otp_ping(e), OTP_OK); /* in memory: always */
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, &issued), OTP_OK);
  CHECK(strlen(code) == 6 && issued.expires_in_ms == 300000);
  wrong_code(code, other);
  CHECK_STATUS(otp_verify(e, KEY("alice"), other, 6, NULL, 0, &left), OTP_MISMATCH);
  CHECK(left == 4);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, strlen(code), NULL, 0, &left), OTP_OK);
  CHECK(left == 0);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, strlen(code), NULL, 0, NULL), OTP_NOT_FOUND);
  /* Spaces and hyphens are ignored; a code with no NUL in its length is fine. */
  CHECK_STATUS(otp_issue(e, KEY("bob"), NULL, 0, 0, code, 7, NULL), OTP_OK);
  char spaced[16] = {code[0], code[1], code[2], '-', code[3], code[4], code[5], ' ', 'Z'};
  CHECK_STATUS(otp_verify(e, KEY("bob"), spaced, 8, NULL, 0, NULL), OTP_OK);
  /* Typed input is read up to 256 bytes: 251 spaces and the code (257 bytes) is a
   * mismatch without being read further; 250 spaces and the code (256) verifies. */
  static char typed[257];
  CHECK_STATUS(otp_issue(e, KEY("carol"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  memset(typed, ' ', sizeof typed);
  memcpy(typed + 251, code, 6);
  CHECK_STATUS(otp_verify(e, KEY("carol"), typed, 257, NULL, 0, &left), OTP_MISMATCH);
  CHECK(left == 4);
  CHECK_STATUS(otp_verify(e, KEY("carol"), typed + 1, 256, NULL, 0, &left), OTP_OK);
  otp_engine_free(e);
}

static void test_burn_and_lockout(void) {
  otp_engine *e = manual_engine(no_limits);
  char code[16], other[16];
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  wrong_code(code, other);
  for (int i = 0; i < 4; i++) CHECK_STATUS(otp_verify(e, KEY("alice"), other, 6, NULL, 0, NULL), OTP_MISMATCH);
  CHECK_STATUS(otp_verify(e, KEY("alice"), other, 6, NULL, 0, NULL), OTP_LOCKED);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, 6, NULL, 0, NULL), OTP_LOCKED);
  otp_engine_free(e);

  otp_config c;
  otp_config_default(&c);
  c.manual_clock = 1;
  c.resend_cooldown_ms = 0;
  c.max_failures_per_key = 2;
  c.lockout_ms = 60000;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  otp_issued issued = {0, 0, {0}};
  CHECK_STATUS(otp_issue(e, KEY("bob"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  wrong_code(code, other);
  otp_verdict verdict;
  CHECK_STATUS(otp_verify_ex(e, KEY("bob"), other, 6, NULL, 0, &verdict), OTP_MISMATCH);
  CHECK(verdict.status == OTP_MISMATCH && verdict.attempts_left == 1 && verdict.retry_after_ms == 0);
  /* The failure that spends the budget says how long the lockout lasts. */
  CHECK_STATUS(otp_verify_ex(e, KEY("bob"), other, 6, NULL, 0, &verdict), OTP_LOCKED);
  CHECK(verdict.status == OTP_LOCKED && verdict.retry_after_ms == 60000);
  CHECK_STATUS(otp_verify_ex(e, KEY("bob"), code, 6, NULL, 0, NULL), OTP_LOCKED);
  CHECK_STATUS(otp_clock_advance(e, 1000), OTP_OK);
  CHECK_STATUS(otp_verify_ex(e, KEY("bob"), code, 6, NULL, 0, &verdict), OTP_LOCKED);
  CHECK(verdict.retry_after_ms == 59000);
  CHECK_STATUS(otp_issue(e, KEY("bob"), NULL, 0, 0, code, sizeof code, &issued), OTP_LOCKED);
  CHECK(issued.retry_after_ms == 59000);
  CHECK_STATUS(otp_unlock(e, KEY("bob")), OTP_OK);
  CHECK_STATUS(otp_unlock(e, KEY("bob")), OTP_NOT_FOUND);
  CHECK_STATUS(otp_issue(e, KEY("bob"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  otp_engine_free(e);
}

/* Spends the key's budget of 2 on a fresh code; the lockout's wait, or 0. */
static uint64_t spend_budget(otp_engine *e, const char *key) {
  char code[16], other[16];
  otp_issued issued = {0, 0, {0}};
  CHECK_STATUS(otp_issue(e, KEY(key), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  wrong_code(code, other);
  CHECK_STATUS(otp_verify(e, KEY(key), other, 6, NULL, 0, NULL), OTP_MISMATCH);
  CHECK_STATUS(otp_verify(e, KEY(key), other, 6, NULL, 0, NULL), OTP_LOCKED);
  CHECK_STATUS(otp_issue(e, KEY(key), NULL, 0, 0, code, sizeof code, &issued), OTP_LOCKED);
  return issued.retry_after_ms;
}

/* Each budget spent again doubles the lockout, up to max_lockout_ms; a success
 * or an unlock starts again from lockout_ms; escalation can be turned off. */
static void test_escalating_lockouts(void) {
  otp_config c;
  otp_engine *e = NULL;
  otp_config_default(&c);
  c.manual_clock = 1;
  c.resend_cooldown_ms = 0;
  c.max_issues_per_window = 0;
  c.max_failures_per_key = 2;
  c.lockout_ms = 60000;
  c.max_lockout_ms = 240000;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  CHECK(spend_budget(e, "alice") == 60000);
  CHECK_STATUS(otp_clock_advance(e, 60000), OTP_OK);
  CHECK(spend_budget(e, "alice") == 120000);
  CHECK_STATUS(otp_clock_advance(e, 120000), OTP_OK);
  CHECK(spend_budget(e, "alice") == 240000);
  CHECK_STATUS(otp_clock_advance(e, 240000), OTP_OK);
  CHECK(spend_budget(e, "alice") == 240000); /* max_lockout_ms */
  CHECK_STATUS(otp_unlock(e, KEY("alice")), OTP_OK);
  CHECK(spend_budget(e, "alice") == 60000);
  otp_engine_free(e);
  c.escalate_lockouts = 0;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  CHECK(spend_budget(e, "bob") == 60000);
  CHECK_STATUS(otp_clock_advance(e, 60000), OTP_OK);
  CHECK(spend_budget(e, "bob") == 60000);
  otp_engine_free(e);
}

static void test_expiry_on_the_manual_clock(void) {
  otp_engine *e = manual_engine(no_limits);
  char code[16];
  otp_issued issued;
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 5000, code, sizeof code, &issued), OTP_OK);
  CHECK(issued.expires_in_ms == 5000);
  CHECK_STATUS(otp_clock_advance(e, 4999), OTP_OK);
  CHECK_STATUS(otp_issue(e, KEY("bob"), NULL, 0, 5000, code + 8, 8, NULL), OTP_OK);
  CHECK_STATUS(otp_clock_advance(e, 1), OTP_OK);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, 6, NULL, 0, NULL), OTP_EXPIRED);
  CHECK_STATUS(otp_verify(e, KEY("bob"), code + 8, 6, NULL, 0, NULL), OTP_OK);
  /* ttl bounds per call */
  CHECK_STATUS(otp_issue(e, KEY("carol"), NULL, 0, 999, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("ttl_ms must be between 1000 and 86400000, got 999"));
  otp_engine_free(e);
  /* The system clock cannot be advanced. */
  otp_config c;
  otp_config_default(&c);
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  CHECK_STATUS(otp_clock_advance(e, 1), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("manual clock"));
  otp_engine_free(e);
}

static void test_context_binding(void) {
  otp_engine *e = manual_engine(no_limits);
  char code[16];
  const char *transfer = "EUR 250.00 to DE89 3704 0044 0532 0130 00";
  const char *tampered = "EUR 2500.00 to DE89 3704 0044 0532 0130 00";
  CHECK_STATUS(otp_issue(e, KEY("alice"), KEY(transfer), 0, code, sizeof code, NULL), OTP_OK);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, 6, KEY(tampered), NULL), OTP_MISMATCH);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, 6, NULL, 0, NULL), OTP_MISMATCH);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, 6, KEY(transfer), NULL), OTP_OK);
  otp_engine_free(e);
}

static void test_rate_limits(void) {
  otp_engine *e = manual_engine(NULL); /* default limits: 30 s cooldown, 5 per 10 min */
  char code[16];
  otp_issued issued = {0, 0, {0}};
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  CHECK_STATUS(otp_clock_advance(e, 12345), OTP_OK);
  memcpy(code, "keep", 5);
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, &issued), OTP_RATE_LIMITED);
  CHECK(issued.retry_after_ms == 17655 && issued.expires_in_ms == 0);
  CHECK(strcmp(code, "keep") == 0); /* code_out untouched on refusal */
  CHECK(last_error_contains("rate limited"));
  for (int i = 0; i < 4; i++) {
    CHECK_STATUS(otp_clock_advance(e, 30000), OTP_OK);
    CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  }
  CHECK_STATUS(otp_clock_advance(e, 30000), OTP_OK);
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, &issued), OTP_RATE_LIMITED);
  CHECK(issued.retry_after_ms == 600000 - 12345 - 5 * 30000);
  otp_engine_free(e);
}

static void test_capacity_revoke_and_stats(void) {
  otp_config c;
  otp_engine *e = NULL;
  otp_config_default(&c);
  c.manual_clock = 1;
  c.capacity = 2;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  char a[16], b[16], x[16];
  CHECK_STATUS(otp_issue(e, KEY("a"), NULL, 0, 0, a, sizeof a, NULL), OTP_OK);
  CHECK_STATUS(otp_issue(e, KEY("b"), NULL, 0, 0, b, sizeof b, NULL), OTP_OK);
  CHECK_STATUS(otp_issue(e, KEY("c"), NULL, 0, 0, x, sizeof x, NULL), OTP_CAPACITY_EXCEEDED);
  CHECK(last_error_contains("capacity"));
  CHECK_STATUS(otp_issue(e, KEY("a"), NULL, 0, 0, x, sizeof x, NULL), OTP_RATE_LIMITED);
  CHECK_STATUS(otp_revoke(e, KEY("a")), OTP_OK);
  CHECK_STATUS(otp_revoke(e, KEY("a")), OTP_NOT_FOUND);
  CHECK_STATUS(otp_verify(e, KEY("a"), a, 6, NULL, 0, NULL), OTP_NOT_FOUND);
  CHECK_STATUS(otp_verify(e, KEY("b"), "000000", 6, NULL, 0, NULL), strcmp(b, "000000") ? OTP_MISMATCH : OTP_OK);
  otp_stats s;
  memset(&s, 0xff, sizeof s);
  CHECK_STATUS(otp_engine_stats(e, &s), OTP_OK);
  CHECK(s.issued == 2 && s.rate_limited == 1 && s.revoked == 1 && s.live == 1);
  CHECK(s.mismatched + s.verified == 1 && s.locked == 0 && s.expired == 0);
  CHECK(s.not_found == 1 && s.capacity_exceeded == 1 && s.held == 2 && s.replayed == 0);
  CHECK_STATUS(otp_engine_stats(e, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_engine_stats(NULL, &s), OTP_INVALID_ARGUMENT);
  otp_engine_free(e);
}

static void test_bad_arguments_change_nothing(void) {
  otp_engine *e = manual_engine(no_limits);
  char code[16], small[6];
  uint8_t long_key[1025];
  memset(long_key, 'k', sizeof long_key);
  otp_issued issued = {7, 7, {0}};
  CHECK_STATUS(otp_issue(NULL, KEY("a"), NULL, 0, 0, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("engine must not be NULL"));
  CHECK_STATUS(otp_issue(e, NULL, 1, NULL, 0, 0, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_issue(e, (const uint8_t *)"", 0, NULL, 0, 0, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("key must be between 1 and 1024 bytes long, got 0 bytes"));
  CHECK_STATUS(otp_issue(e, long_key, sizeof long_key, NULL, 0, 0, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_issue(e, long_key, 1024, NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  CHECK_STATUS(otp_issue(e, KEY("a"), NULL, 3, 0, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("context may be NULL only with context_len 0, got context_len 3"));
  CHECK_STATUS(otp_issue(e, KEY("a"), long_key, sizeof long_key, 0, code, sizeof code, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_issue(e, KEY("a"), NULL, 0, 0, NULL, 16, NULL), OTP_INVALID_ARGUMENT);
  memcpy(small, "keep!", 6);
  CHECK_STATUS(otp_issue(e, KEY("a"), NULL, 0, 0, small, sizeof small, &issued), OTP_BUFFER_TOO_SMALL);
  CHECK(strcmp(small, "keep!") == 0);
  CHECK(last_error_contains("code_out_len must be at least 7"));
  CHECK(issued.expires_in_ms == 7 && issued.retry_after_ms == 7);
  CHECK_STATUS(otp_verify(e, KEY("a"), NULL, 6, NULL, 0, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_verify(e, NULL, 0, "123456", 6, NULL, 0, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_verify(NULL, KEY("a"), "123456", 6, NULL, 0, NULL), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_revoke(e, NULL, 0), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_revoke(NULL, KEY("a")), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_unlock(e, NULL, 3), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_clock_advance(NULL, 1), OTP_INVALID_ARGUMENT);
  /* None of that issued a code for "a": only the 1024-byte key was issued. */
  otp_stats s;
  CHECK_STATUS(otp_engine_stats(e, &s), OTP_OK);
  CHECK(s.issued == 1 && s.live == 1);
  CHECK_STATUS(otp_verify(e, KEY("a"), "123456", 6, NULL, 0, NULL), OTP_NOT_FOUND);
  otp_engine_free(e);
}

static void test_alphanumeric(void) {
  otp_config c;
  otp_engine *e = NULL;
  otp_config_default(&c);
  c.alphabet = OTP_ALPHABET_ALPHANUMERIC;
  c.code_length = 10;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  char code[11];
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  CHECK(strlen(code) == 10 && strspn(code, "23456789ABCDEFGHJKLMNPQRSTUVWXYZ") == 10);
  for (char *p = code; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, 10, NULL, 0, NULL), OTP_OK);
  otp_engine_free(e);
}

/* A memory engine inherited across fork(): the child's copy starts empty (the
 * code pending at the fork is not there, nor are the parent's counters) and works
 * as a fresh engine; the parent's code still verifies, once, in the parent. */
static void test_a_forked_child_starts_empty(void) {
  otp_engine *e = manual_engine(NULL);
  char code[16];
  CHECK_STATUS(otp_issue(e, KEY("pending"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    otp_stats s;
    char fresh[16];
    int ok = otp_verify(e, KEY("pending"), code, strlen(code), NULL, 0, NULL) == OTP_NOT_FOUND;
    ok = ok && otp_engine_stats(e, &s) == OTP_OK && s.issued == 0;
    ok = ok && otp_issue(e, KEY("fresh"), NULL, 0, 0, fresh, sizeof fresh, NULL) == OTP_OK;
    ok = ok && otp_verify(e, KEY("fresh"), fresh, strlen(fresh), NULL, 0, NULL) == OTP_OK;
    _exit(ok ? 0 : 1);
  }
  CHECK(pid > 0);
  int status = -1;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_STATUS(otp_verify(e, KEY("pending"), code, strlen(code), NULL, 0, NULL), OTP_OK);
  otp_engine_free(e);
}

/* Freed from an atexit handler, after the C library has torn down the main
 * thread's thread-locals: must neither panic nor abort. */
static otp_engine *freed_at_exit;
static void free_at_exit(void) {
  otp_stats s;
  otp_engine_stats(freed_at_exit, &s);
  otp_engine_free(freed_at_exit);
}

/* RFC 4226 Appendix D and RFC 6238 Appendix B, through otp_hotp and otp_totp. */
static void test_hotp_and_totp_give_the_rfc_vectors(void) {
  static const char *hotp_want[] = {"755224", "287082", "359152", "969429", "338314",
                                    "254676", "287922", "162583", "399871", "520489"};
  const uint8_t *seed20 = (const uint8_t *)"12345678901234567890";
  const uint8_t *seed32 = (const uint8_t *)"12345678901234567890123456789012";
  const uint8_t *seed64 =
      (const uint8_t *)"1234567890123456789012345678901234567890123456789012345678901234";
  char code[16];
  for (uint64_t counter = 0; counter < 10; counter++) {
    CHECK_STATUS(otp_hotp(seed20, 20, counter, 6, OTP_HASH_SHA1, code, sizeof code), OTP_OK);
    CHECK(strcmp(code, hotp_want[counter]) == 0);
  }
  otp_totp_params p;
  otp_totp_params_default(&p);
  CHECK(p.digits == 6 && p.period_s == 30 && p.algorithm == OTP_HASH_SHA1);
  CHECK(p.skew_back == 1 && p.skew_ahead == 1);
  p.digits = 8;
  struct {
    uint64_t at;
    const char *sha1, *sha256, *sha512;
  } rows[] = {
      {59, "94287082", "46119246", "90693936"},
      {1111111109, "07081804", "68084774", "25091201"},
      {2000000000, "69279037", "90698825", "38618901"},
      {20000000000ULL, "65353130", "77737706", "47863826"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    p.algorithm = OTP_HASH_SHA1;
    CHECK_STATUS(otp_totp(seed20, 20, rows[i].at, &p, code, sizeof code), OTP_OK);
    CHECK(strcmp(code, rows[i].sha1) == 0);
    p.algorithm = OTP_HASH_SHA256;
    CHECK_STATUS(otp_totp(seed32, 32, rows[i].at, &p, code, sizeof code), OTP_OK);
    CHECK(strcmp(code, rows[i].sha256) == 0);
    p.algorithm = OTP_HASH_SHA512;
    CHECK_STATUS(otp_totp(seed64, 64, rows[i].at, &p, code, sizeof code), OTP_OK);
    CHECK(strcmp(code, rows[i].sha512) == 0);
  }
  /* NULL params: the defaults (6 digits, 30 s, SHA-1). */
  CHECK_STATUS(otp_totp(seed20, 20, 59, NULL, code, sizeof code), OTP_OK);
  CHECK(strcmp(code, "287082") == 0);
}

static void test_totp_arguments_and_the_enrolment_uri(void) {
  const uint8_t *seed = (const uint8_t *)"12345678901234567890";
  char code[16], small[6], uri[256];
  otp_totp_params p;
  otp_totp_params_default(&p);
  p.digits = 9;
  CHECK_STATUS(otp_totp(seed, 20, 0, &p, code, sizeof code), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("digits must be between 6 and 8, got 9"));
  otp_totp_params_default(&p);
  p.period_s = 5;
  CHECK_STATUS(otp_totp(seed, 20, 0, &p, code, sizeof code), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("period_s must be between 10"));
  otp_totp_params_default(&p);
  p.algorithm = 3;
  CHECK_STATUS(otp_totp(seed, 20, 0, &p, code, sizeof code), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("algorithm must be one of"));
  CHECK_STATUS(otp_hotp(seed, 15, 0, 6, OTP_HASH_SHA1, code, sizeof code), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("secret must be between 16 and 64 bytes long, got 15 bytes"));
  CHECK_STATUS(otp_hotp(NULL, 20, 0, 6, OTP_HASH_SHA1, code, sizeof code), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_hotp(seed, 20, 0, 6, OTP_HASH_SHA1, small, 6), OTP_BUFFER_TOO_SMALL);
  CHECK_STATUS(otp_hotp(seed, 20, 0, 6, OTP_HASH_SHA1, small, 7 - 1), OTP_BUFFER_TOO_SMALL);

  size_t len = 0;
  CHECK_STATUS(otp_totp_uri(seed, 20, "Acme Bank", "alice@example.com", NULL, uri, sizeof uri, &len),
               OTP_OK);
  const char *want =
      "otpauth://totp/Acme%20Bank:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
      "&issuer=Acme%20Bank&algorithm=SHA1&digits=6&period=30";
  CHECK(strcmp(uri, want) == 0);
  CHECK(len == strlen(want) + 1);
  /* Too small: the length is reported all the same, nothing else is written. */
  size_t needed = 0;
  memset(uri, 'x', sizeof uri);
  CHECK_STATUS(otp_totp_uri(seed, 20, "Acme Bank", "alice@example.com", NULL, uri, 10, &needed),
               OTP_BUFFER_TOO_SMALL);
  CHECK(needed == len && uri[0] == 'x');
  CHECK_STATUS(otp_totp_uri(seed, 20, NULL, "alice", NULL, uri, sizeof uri, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("issuer must not be NULL"));
  CHECK_STATUS(otp_totp_uri(seed, 20, "", "alice", NULL, uri, sizeof uri, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("issuer must be between 1 and 255 bytes long"));

  /* The QR code of the URI: asked for its size first, then drawn. */
  size_t svg_len = 0;
  CHECK_STATUS(otp_qr_svg((const uint8_t *)want, strlen(want), small, sizeof small, &svg_len),
               OTP_BUFFER_TOO_SMALL);
  CHECK(svg_len > 1000);
  char *svg = malloc(svg_len);
  CHECK(svg != NULL);
  size_t written = 0;
  CHECK_STATUS(otp_qr_svg((const uint8_t *)want, strlen(want), svg, svg_len, &written), OTP_OK);
  CHECK(written == svg_len && strlen(svg) + 1 == svg_len);
  CHECK(strncmp(svg, "<?xml", 5) == 0 && strstr(svg, "<svg") != NULL);
  free(svg);
  static char big[2332];
  memset(big, 'a', sizeof big);
  CHECK_STATUS(otp_qr_svg((const uint8_t *)big, sizeof big, uri, sizeof uri, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("text must be at most 2331 bytes long, got 2332 bytes"));
  CHECK_STATUS(otp_qr_svg((const uint8_t *)"\xff", 1, uri, sizeof uri, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("text must be UTF-8"));
}

/* The message helpers: the same texts as core's, and errors named. */
static void test_messages(void) {
  char text[512];
  size_t len = 0;
  CHECK_STATUS(otp_sms_text("123456", "Acme", 300000, NULL, NULL, NULL, 0, text, sizeof text, &len), OTP_OK);
  CHECK(strcmp(text, "Acme: your code is 123456. It expires in 5 minutes. Do not share it.") == 0);
  CHECK(len == strlen(text) + 1);
  CHECK_STATUS(otp_sms_text("A7K9Q", "Bank", 119500, NULL, "bank.example.com", "V0wMPhmEo8U", 0, text,
                            sizeof text, NULL),
               OTP_OK);
  CHECK(strcmp(text, "Bank: your code is A7K9Q. It expires in 1 minute. Do not share it.\n"
                     "V0wMPhmEo8U\n@bank.example.com #A7K9Q") == 0);
  CHECK_STATUS(otp_sms_text("8812", "Shop", 45000, "{code}: {brand}, {minutes}", NULL, NULL, 0, text,
                            sizeof text, NULL),
               OTP_OK);
  CHECK(strcmp(text, "8812: Shop, 45 seconds") == 0);
  char small[8];
  CHECK_STATUS(otp_sms_text("123456", "Acme", 300000, NULL, NULL, NULL, 0, small, sizeof small, &len),
               OTP_BUFFER_TOO_SMALL);
  CHECK(len == strlen("Acme: your code is 123456. It expires in 5 minutes. Do not share it.") + 1);
  CHECK_STATUS(otp_sms_text("1234", "Acme", 0, NULL, NULL, NULL, 0, text, sizeof text, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("ttl_ms must be between 1000 and 86400000, got 0"));
  CHECK_STATUS(otp_sms_text("1234", "Acme", 60000, "{code} {amount}", NULL, NULL, 0, text, sizeof text, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("template_text must be"));
  CHECK_STATUS(otp_sms_text("1234", "Acme", 60000, NULL, "https://a.com", NULL, 0, text, sizeof text, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("webotp_domain must be"));
  CHECK_STATUS(otp_sms_text(NULL, "Acme", 60000, NULL, NULL, NULL, 0, text, sizeof text, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("code must not be NULL"));

  CHECK_STATUS(otp_voice_text("123456", "Acme", text, sizeof text, NULL), OTP_OK);
  CHECK(strcmp(text, "Your Acme code is 1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6.") == 0);

  const uint8_t cert[] = {0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xc0, 0xff, 0xee};
  char hash[12];
  CHECK_STATUS(otp_android_app_hash("com.example.myapp", cert, sizeof cert, hash, sizeof hash), OTP_OK);
  CHECK(strcmp(hash, "V0wMPhmEo8U") == 0);
  CHECK_STATUS(otp_android_app_hash("app", cert, sizeof cert, hash, sizeof hash), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("package_name must be"));
  CHECK_STATUS(otp_android_app_hash("com.example.myapp", cert, 0, hash, sizeof hash), OTP_INVALID_ARGUMENT);

  otp_sms_encoding encoding = OTP_SMS_UCS2;
  uint32_t segments = 0;
  static char long_text[161];
  memset(long_text, 'a', sizeof long_text);
  CHECK_STATUS(otp_sms_segments((const uint8_t *)long_text, 160, &encoding, &segments), OTP_OK);
  CHECK(encoding == OTP_SMS_GSM7 && segments == 1);
  CHECK_STATUS(otp_sms_segments((const uint8_t *)long_text, 161, &encoding, &segments), OTP_OK);
  CHECK(encoding == OTP_SMS_GSM7 && segments == 2);
  const char *cyrillic = "\xd0\x9a\xd0\xbe\xd0\xb4"; /* "Код" */
  CHECK_STATUS(otp_sms_segments((const uint8_t *)cyrillic, strlen(cyrillic), &encoding, &segments), OTP_OK);
  CHECK(encoding == OTP_SMS_UCS2 && segments == 1);
  CHECK_STATUS(otp_sms_segments((const uint8_t *)"\xff", 1, &encoding, &segments), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("text must be UTF-8"));
}

/* otp_verify_totp: once, a replay, the budget and the lockout with its wait, and
 * NULL params and verdict_out. */
static void test_verify_totp(void) {
  otp_config c;
  otp_engine *e = NULL;
  otp_config_default(&c);
  c.manual_clock = 1;
  c.max_failures_per_key = 2;
  c.lockout_ms = 600000;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  const uint8_t *secret = (const uint8_t *)"12345678901234567890";
  const uint64_t t0 = 1700000000;
  char code[16];
  CHECK_STATUS(otp_totp(secret, 20, t0, NULL, code, sizeof code), OTP_OK);
  otp_verdict v = {OTP_INTERNAL_ERROR, 99, 99};
  CHECK_STATUS(otp_verify_totp(e, KEY("alice"), secret, 20, code, strlen(code), NULL, t0, &v), OTP_OK);
  CHECK(v.status == OTP_OK && v.attempts_left == 0 && v.retry_after_ms == 0);
  CHECK_STATUS(otp_verify_totp(e, KEY("alice"), secret, 20, code, strlen(code), NULL, t0, &v),
               OTP_REPLAYED);
  CHECK(v.status == OTP_REPLAYED);
  CHECK(strcmp(otp_status_str(OTP_REPLAYED), "replayed: this authenticator code was already used") == 0);
  CHECK_STATUS(otp_verify_totp(e, KEY("alice"), secret, 20, "000000", 6, NULL, t0, &v), OTP_MISMATCH);
  CHECK(v.status == OTP_MISMATCH && v.attempts_left == 1);
  CHECK_STATUS(otp_verify_totp(e, KEY("alice"), secret, 20, "000000", 6, NULL, t0, NULL), OTP_LOCKED);
  CHECK_STATUS(otp_clock_advance(e, 1000), OTP_OK);
  CHECK_STATUS(otp_verify_totp(e, KEY("alice"), secret, 20, code, strlen(code), NULL, t0, &v), OTP_LOCKED);
  CHECK(v.status == OTP_LOCKED && v.retry_after_ms == 599000);
  CHECK_STATUS(otp_unlock(e, KEY("alice")), OTP_NOT_FOUND); /* random codes: nothing to lift */
  CHECK_STATUS(otp_unlock_totp(e, KEY("alice")), OTP_OK);
  CHECK_STATUS(otp_unlock_totp(e, KEY("alice")), OTP_NOT_FOUND);
  CHECK_STATUS(otp_verify_totp(e, KEY("alice"), secret, 20, code, strlen(code), NULL, t0, &v),
               OTP_REPLAYED);
  /* The skew edges: one step each way by default, none with skew 0. */
  char near[16], far[16];
  CHECK_STATUS(otp_totp(secret, 20, t0 - 30, NULL, near, sizeof near), OTP_OK);
  CHECK_STATUS(otp_totp(secret, 20, t0 - 60, NULL, far, sizeof far), OTP_OK);
  CHECK_STATUS(otp_verify_totp(e, KEY("k1"), secret, 20, near, strlen(near), NULL, t0, NULL), OTP_OK);
  CHECK_STATUS(otp_verify_totp(e, KEY("k2"), secret, 20, far, strlen(far), NULL, t0, NULL), OTP_MISMATCH);
  otp_totp_params strict;
  otp_totp_params_default(&strict);
  strict.skew_back = 0;
  CHECK_STATUS(otp_verify_totp(e, KEY("k3"), secret, 20, near, strlen(near), &strict, t0, NULL),
               OTP_MISMATCH);
  /* Apart from random codes: alice's TOTP lockout leaves her random code alone. */
  char issued[16];
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, issued, sizeof issued, NULL), OTP_OK);
  CHECK_STATUS(otp_verify(e, KEY("alice"), issued, strlen(issued), NULL, 0, NULL), OTP_OK);
  /* Bad arguments: an error, and nothing written to verdict_out. */
  v.status = OTP_INTERNAL_ERROR;
  CHECK_STATUS(otp_verify_totp(e, KEY("bob"), secret, 15, code, strlen(code), NULL, t0, &v),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("secret must be between 16 and 64 bytes long, got 15 bytes"));
  CHECK(v.status == OTP_INTERNAL_ERROR);
  CHECK_STATUS(otp_verify_totp(e, KEY("bob"), secret, 20, NULL, 0, NULL, t0, &v), OTP_INVALID_ARGUMENT);
  otp_engine_free(e);
  /* No failure budget: refused, naming the field. */
  c.max_failures_per_key = 0;
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_OK);
  CHECK_STATUS(otp_verify_totp(e, KEY("bob"), secret, 20, code, strlen(code), NULL, t0, NULL),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("max_failures_per_key must be at least 1 for verify_totp"));
  otp_engine_free(e);
}

static void scope_limits(otp_config *c) {
  no_limits(c);
  otp_scope_limit ip;
  memset(&ip, 0, sizeof ip);
  strcpy(ip.name, "ip");
  ip.max_issues = 2;
  ip.issue_window_ms = 3600000;
  ip.max_failures = 2;
  ip.failure_window_ms = 3600000;
  c->scope_limits[0] = ip;
  c->scope_limit_count = 1;
}

static void test_scopes(void) {
  otp_engine *engine = manual_engine(scope_limits);
  char value[64];
  CHECK(otp_ip_scope("203.0.113.7", value, sizeof value) == OTP_OK);
  CHECK(strcmp(value, "203.0.113.7/32") == 0);
  CHECK(otp_ip_scope("2001:db8:1:2:3:4:5:6", value, sizeof value) == OTP_OK);
  CHECK(strcmp(value, "2001:db8:1:2::/64") == 0);
  CHECK(otp_ip_scope("2001:db8::1", value, 4) == OTP_BUFFER_TOO_SMALL);
  CHECK(otp_ip_scope("not an address", value, sizeof value) == OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("addr must be an IPv4 or IPv6 address"));
  CHECK(otp_ip_scope("203.0.113.7", value, sizeof value) == OTP_OK);

  otp_scope scopes[1] = {{"ip", (const uint8_t *)value, strlen(value)}};
  char code[16];
  otp_issued issued;
  CHECK(otp_issue_scoped(engine, KEY("a"), NULL, 0, 0, scopes, 1, code, sizeof code, &issued) == OTP_OK);
  CHECK(otp_issue_scoped(engine, KEY("b"), NULL, 0, 0, scopes, 1, code, sizeof code, &issued) == OTP_OK);
  CHECK(otp_issue_scoped(engine, KEY("c"), NULL, 0, 0, scopes, 1, code, sizeof code, &issued) == OTP_RATE_LIMITED);
  CHECK(issued.retry_after_ms == 3600000 && strcmp(issued.scope, "ip") == 0);
  CHECK(last_error_contains("rate limited by scope \"ip\""));
  size_t text_len = 0;
  char small[8];
  CHECK(otp_prometheus(engine, small, sizeof small, &text_len) == OTP_BUFFER_TOO_SMALL && text_len > 8);
  char *text = malloc(text_len);
  CHECK(text != NULL && otp_prometheus(engine, text, text_len, NULL) == OTP_OK);
  CHECK(strstr(text, "otpengine_rate_limited_total{scope=\"ip\"} 1\n") != NULL);
  free(text);

  otp_scope unknown[1] = {{"tenant", (const uint8_t *)"acme", 4}};
  CHECK(otp_issue_scoped(engine, KEY("d"), NULL, 0, 0, unknown, 1, code, sizeof code, &issued) ==
        OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("scopes must be the name of a configured scope limit, got \"tenant\""));
  CHECK(otp_issue_scoped(engine, KEY("d"), NULL, 0, 0, NULL, 1, code, sizeof code, &issued) ==
        OTP_INVALID_ARGUMENT);
  CHECK(otp_issue_scoped(engine, KEY("d"), NULL, 0, 0, scopes, 9, code, sizeof code, &issued) ==
        OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("scopes must be between 0 and 8, got 9"));

  /* Two wrong guesses from the address spend its failure budget; then even
     the right code is not looked at. */
  char code_x[16], code_y[16], code_z[16];
  CHECK(otp_issue(engine, KEY("x"), NULL, 0, 0, code_x, sizeof code_x, NULL) == OTP_OK);
  CHECK(otp_issue(engine, KEY("y"), NULL, 0, 0, code_y, sizeof code_y, NULL) == OTP_OK);
  CHECK(otp_issue(engine, KEY("z"), NULL, 0, 0, code_z, sizeof code_z, NULL) == OTP_OK);
  otp_verdict verdict;
  const char *wrong_x = strcmp(code_x, "000000") == 0 ? "111111" : "000000";
  const char *wrong_y = strcmp(code_y, "000000") == 0 ? "111111" : "000000";
  CHECK(otp_verify_scoped(engine, KEY("x"), wrong_x, 6, NULL, 0, scopes, 1, &verdict) == OTP_MISMATCH);
  CHECK(verdict.status == OTP_MISMATCH && verdict.attempts_left == 4);
  CHECK(otp_verify_scoped(engine, KEY("y"), wrong_y, 6, NULL, 0, scopes, 1, &verdict) == OTP_MISMATCH);
  CHECK(otp_verify_scoped(engine, KEY("z"), code_z, 6, NULL, 0, scopes, 1, &verdict) == OTP_LOCKED);
  CHECK(verdict.status == OTP_LOCKED && verdict.retry_after_ms == 3600000);
  CHECK(otp_unlock_scope(engine, "ip", (const uint8_t *)value, strlen(value)) == OTP_OK);
  CHECK(otp_unlock_scope(engine, "ip", (const uint8_t *)value, strlen(value)) == OTP_NOT_FOUND);
  CHECK(otp_verify_scoped(engine, KEY("z"), code_z, 6, NULL, 0, scopes, 1, &verdict) == OTP_OK);
  CHECK(otp_unlock_scope(engine, "tenant", NULL, 0) == OTP_INVALID_ARGUMENT);

  /* A bad scope limit in the config names its field as C spells it. */
  otp_config c;
  otp_config_default(&c);
  c.scope_limit_count = 1;
  strcpy(c.scope_limits[0].name, "IP");
  otp_engine *bad = NULL;
  CHECK(otp_engine_new(&c, &bad) == OTP_INVALID_ARGUMENT && bad == NULL);
  CHECK(last_error_contains("scope_limits[].name must be 1 to 31 bytes of a-z, 0-9, _ and -, got \"IP\""));
  strcpy(c.scope_limits[0].name, "ip");
  c.scope_limits[0].max_issues = 5;
  CHECK(otp_engine_new(&c, &bad) == OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("scope_limits[].issue_window_ms must be between 1000 and 86400000, got 0"));
  c.scope_limit_count = 9;
  CHECK(otp_engine_new(&c, &bad) == OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("scope_limit_count must be between 0 and 8, got 9"));
  otp_engine_free(engine);
}

/* A batch answers each key as the single call would, in order; a bad key
 * fails alone, with its message from otp_batch_error; a bad batch argument
 * fails the call and issues nothing. */
static void test_batches(void) {
  otp_engine *e = manual_engine(NULL); /* default limits: 30 s cooldown */
  otp_batch_key keys[4] = {{KEY("alice")}, {NULL, 3}, {KEY("bob")}, {KEY("alice")}};
  char codes[4][16];
  otp_issue_answer answers[4];
  CHECK_STATUS(otp_issue_many(e, keys, 4, KEY("EUR 10"), &codes[0][0], 16, answers), OTP_OK);
  CHECK(answers[0].status == OTP_OK && answers[0].expires_in_ms == 300000 && strlen(codes[0]) == 6);
  CHECK(answers[1].status == OTP_INVALID_ARGUMENT && codes[1][0] == 0);
  CHECK(answers[2].status == OTP_OK && strlen(codes[2]) == 6);
  /* The same key again is inside its own cooldown. */
  CHECK(answers[3].status == OTP_RATE_LIMITED && answers[3].retry_after_ms == 30000 && codes[3][0] == 0);
  char message[128];
  CHECK(otp_batch_error(0, message, sizeof message) == 0);
  CHECK(otp_batch_error(1, message, sizeof message) > 0 && strstr(message, "key must not be NULL") != NULL);
  CHECK(otp_batch_error(3, message, sizeof message) > 0 && strstr(message, "rate limited") != NULL);
  CHECK(otp_batch_error(4, message, sizeof message) == 0); /* past the batch */

  char wrong[16];
  wrong_code(codes[2], wrong);
  otp_verify_item items[4] = {
      {KEY("alice"), codes[0], 6, KEY("EUR 10")},
      {KEY("bob"), wrong, 6, KEY("EUR 10")},
      {KEY("bob"), codes[2], 6, KEY("EUR 11")}, /* another context: a mismatch */
      {KEY("carol"), NULL, 6, NULL, 0},
  };
  otp_verdict verdicts[4];
  CHECK_STATUS(otp_verify_many(e, items, 4, verdicts), OTP_OK);
  CHECK(verdicts[0].status == OTP_OK);
  CHECK(verdicts[1].status == OTP_MISMATCH && verdicts[1].attempts_left == 4);
  CHECK(verdicts[2].status == OTP_MISMATCH && verdicts[2].attempts_left == 3);
  CHECK(verdicts[3].status == OTP_INVALID_ARGUMENT);
  CHECK(otp_batch_error(3, message, sizeof message) > 0 && strstr(message, "code must not be NULL") != NULL);
  CHECK(otp_batch_error(1, message, sizeof message) == 0);
  /* A consumed code is gone for the batch as for the single call. */
  CHECK_STATUS(otp_verify_many(e, items, 1, verdicts), OTP_OK);
  CHECK(verdicts[0].status == OTP_NOT_FOUND);

  /* Bad batch arguments: the call fails, nothing is issued, no item message. */
  otp_batch_key dave[1] = {{KEY("dave")}};
  CHECK_STATUS(otp_issue_many(e, dave, 1, NULL, 0, &codes[0][0], 6, answers), OTP_BUFFER_TOO_SMALL);
  CHECK(last_error_contains("code_stride must be at least 7 (code_length + 1), got 6"));
  CHECK_STATUS(otp_issue_many(e, dave, 1, NULL, 0, &codes[0][0], 16, NULL), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("answers_out must not be NULL with a count of 1"));
  CHECK_STATUS(otp_issue_many(e, dave, 1, NULL, 5, &codes[0][0], 16, answers), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("context may be NULL only with context_len 0"));
  CHECK_STATUS(otp_verify_many(e, NULL, 2, verdicts), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("items must not be NULL with a count of 2"));
  CHECK(otp_batch_error(0, message, sizeof message) == 0);
  CHECK_STATUS(otp_issue_many(NULL, dave, 1, NULL, 0, &codes[0][0], 16, answers), OTP_INVALID_ARGUMENT);
  CHECK_STATUS(otp_issue(e, KEY("dave"), NULL, 0, 0, &codes[0][0], 16, NULL), OTP_OK); /* no cooldown: never issued */
  /* An empty batch runs and answers nothing. */
  CHECK_STATUS(otp_issue_many(e, NULL, 0, NULL, 0, NULL, 16, NULL), OTP_OK);
  CHECK_STATUS(otp_verify_many(e, NULL, 0, NULL), OTP_OK);
  otp_stats s;
  CHECK_STATUS(otp_engine_stats(e, &s), OTP_OK);
  CHECK(s.issued == 3 && s.verified == 1 && s.mismatched == 2 && s.rate_limited == 1 && s.not_found == 1);
  otp_engine_free(e);
}

int main(void) {
  freed_at_exit = manual_engine(NULL);
  atexit(free_at_exit);
  test_defaults_and_version();
  test_status_strings();
  test_engine_new_rejects_bad_config();
  test_last_error_truncates_like_snprintf();
  test_issue_and_verify();
  test_burn_and_lockout();
  test_escalating_lockouts();
  test_expiry_on_the_manual_clock();
  test_context_binding();
  test_rate_limits();
  test_capacity_revoke_and_stats();
  test_bad_arguments_change_nothing();
  test_alphanumeric();
  test_a_forked_child_starts_empty();
  test_hotp_and_totp_give_the_rfc_vectors();
  test_totp_arguments_and_the_enrolment_uri();
  test_verify_totp();
  test_messages();
  test_scopes();
  test_batches();
  DONE();
}
