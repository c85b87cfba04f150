/* otp_engine_new_redis and OTP_BACKEND_UNAVAILABLE, against the real servers
 * of scripts/with-redis.sh (OTPENGINE_REDIS_URL, OTPENGINE_REDIS_CLUSTER).
 * Without them the test says so loudly and passes, unless
 * OTPENGINE_REQUIRE_REDIS=1, which makes a missing server a failure. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otpengine.h"
#include "check.h"

#define KEY(s) (const uint8_t *)(s), strlen(s)

static const uint8_t SECRET[] = "otpengine C test secret, 32 b..";

static otp_engine *redis_engine(const char *url) {
  otp_config c;
  otp_config_default(&c);
  c.resend_cooldown_ms = 0;
  c.max_issues_per_window = 0;
  otp_engine *e = NULL;
  if (otp_engine_new_redis(&c, url, SECRET, sizeof SECRET - 1, &e) != OTP_OK) {
    char buf[512];
    otp_last_error(buf, sizeof buf);
    fprintf(stderr, "otp_engine_new_redis(%s) failed: %s\n", url, buf);
    exit(2);
  }
  return e;
}

static void test_arguments_are_checked(const char *url) {
  otp_config c;
  otp_config_default(&c);
  CHECK(c.redis_connect_timeout_ms == 0 && c.redis_response_timeout_ms == 0); /* 0: the engine's */
  otp_engine *e = (otp_engine *)(uintptr_t)0x1; /* must stay untouched */
  CHECK_STATUS(otp_engine_new_redis(&c, url, SECRET, 8, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("secret must be between 16 and 1024 bytes long, got 8 bytes"));
  CHECK_STATUS(otp_engine_new_redis(&c, url, NULL, 0, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("secret must be given with a Redis URL"));
  CHECK_STATUS(otp_engine_new_redis(&c, url, NULL, 16, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("secret may be NULL only with secret_len 0"));
  /* No URL: an in-memory engine keyed by the secret; a Redis setting without
   * a URL is refused by name (the engine's rule, the same in every language). */
  otp_engine *memory = NULL;
  CHECK_STATUS(otp_engine_new_redis(&c, NULL, SECRET, 16, &memory), OTP_OK);
  otp_engine_free(memory);
  c.redis_connect_timeout_ms = 500;
  CHECK_STATUS(otp_engine_new_redis(&c, NULL, SECRET, 16, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("redis_connect_timeout_ms must be left unset without a Redis URL"));
  CHECK_STATUS(otp_engine_new(&c, &e), OTP_INVALID_ARGUMENT);
  c.redis_connect_timeout_ms = 0;
  CHECK_STATUS(otp_engine_new_redis(&c, "http://example.com", SECRET, 16, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("url must be a redis://"));
  /* Every credential form the redis crate reads, in a URL refused for another
   * reason: the error names the URL with the password hidden. */
  static const char *const leaky[] = {
      "redis://alice:hunter2@localhost/notadb",
      "redis://localhost/notadb?password=hunter2",
      "redis+unix:///run/redis.sock?pass=hunter2&db=x",
      "redis+cluster://alice:hunter2@a:1,,b:2",
  };
  for (size_t i = 0; i < sizeof leaky / sizeof leaky[0]; i++) {
    char buf[512];
    CHECK_STATUS(otp_engine_new_redis(&c, leaky[i], SECRET, 16, &e), OTP_INVALID_ARGUMENT);
    otp_last_error(buf, sizeof buf);
    CHECK(strstr(buf, "url must be") != NULL && strstr(buf, "hunter2") == NULL);
  }
  c.redis_response_timeout_ms = 60001;
  CHECK_STATUS(otp_engine_new_redis(&c, url, SECRET, 16, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("redis_response_timeout_ms must be between 1 and 60000, got 60001"));
  otp_config_default(&c);
  c.ttl_ms = 0;
  CHECK_STATUS(otp_engine_new_redis(&c, url, SECRET, 16, &e), OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("ttl_ms"));
  CHECK(e == (otp_engine *)(uintptr_t)0x1);
}

static void test_an_unreachable_server_is_backend_unavailable(void) {
  otp_config c;
  otp_config_default(&c);
  c.redis_connect_timeout_ms = 200;
  otp_engine *e = (otp_engine *)(uintptr_t)0x1;
  /* Port 1: nothing listens there. */
  CHECK_STATUS(otp_engine_new_redis(&c, "redis://127.0.0.1:1/0", SECRET, 16, &e), OTP_BACKEND_UNAVAILABLE);
  CHECK(last_error_contains("redis at 127.0.0.1:1 unreachable"));
  CHECK(e == (otp_engine *)(uintptr_t)0x1);
  CHECK(strncmp(otp_status_str(OTP_BACKEND_UNAVAILABLE), "backend unavailable", 19) == 0);
}

/* Two engines over one store, as two instances of a service. */
static void test_two_instances_share_one_store(const char *url) {
  otp_engine *a = redis_engine(url), *b = redis_engine(url);
  char key[64], code[16], other[16];
  uint32_t left = 0;
  snprintf(key, sizeof key, "c-test-%ld-%d", (long)time(NULL), rand());
  CHECK_STATUS(otp_ping(a), OTP_OK);
  CHECK_STATUS(otp_issue(a, KEY(key), KEY("EUR 10"), 0, code, sizeof code, NULL), OTP_OK);
  wrong_code(code, other);
  CHECK_STATUS(otp_verify(b, KEY(key), other, 6, KEY("EUR 10"), &left), OTP_MISMATCH);
  CHECK(left == 4);
  CHECK_STATUS(otp_verify(a, KEY(key), other, 6, KEY("EUR 10"), &left), OTP_MISMATCH);
  CHECK(left == 3);
  CHECK_STATUS(otp_verify(a, KEY(key), code, 6, KEY("EUR 11"), &left), OTP_MISMATCH);
  CHECK(left == 2);
  CHECK_STATUS(otp_verify(b, KEY(key), code, 6, KEY("EUR 10"), NULL), OTP_OK);
  CHECK_STATUS(otp_verify(a, KEY(key), code, 6, KEY("EUR 10"), NULL), OTP_NOT_FOUND);
  CHECK_STATUS(otp_issue(b, KEY(key), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  CHECK_STATUS(otp_revoke(a, KEY(key)), OTP_OK);
  CHECK_STATUS(otp_revoke(b, KEY(key)), OTP_NOT_FOUND);
  CHECK_STATUS(otp_unlock(b, KEY(key)), OTP_NOT_FOUND);
  otp_stats s;
  CHECK_STATUS(otp_engine_stats(a, &s), OTP_OK);
  CHECK(s.issued == 1 && s.mismatched == 2 && s.revoked == 1 && s.unavailable == 0);
  CHECK_STATUS(otp_engine_stats(b, &s), OTP_OK);
  CHECK(s.issued == 1 && s.mismatched == 1 && s.verified == 1 && s.revoked == 0);
  otp_engine_free(a);
  otp_engine_free(b);
}

static const char *server(const char *var) {
  const char *url = getenv(var);
  if (url != NULL && *url != 0) return url;
  const char *require = getenv("OTPENGINE_REQUIRE_REDIS");
  if (require != NULL && strcmp(require, "1") == 0) {
    fprintf(stderr, "OTPENGINE_REQUIRE_REDIS=1 but %s is not set\n", var);
    exit(1);
  }
  fprintf(stderr,
          "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
          "%s is not set: the C tests against Redis are SKIPPED.\n"
          "Run them with real servers: scripts/with-redis.sh (make test does).\n"
          "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n",
          var);
  return NULL;
}

/* A TOTP code verified on one instance is a replay on the other; a failure
 * counted on one is seen by the other. Keys are fresh per run. */
static void test_totp_across_instances(const char *url) {
  otp_engine *a = redis_engine(url), *b = redis_engine(url);
  char key[64];
  snprintf(key, sizeof key, "c-totp-%d", rand());
  const uint8_t *secret = (const uint8_t *)"12345678901234567890";
  const uint64_t t0 = 1700000000;
  char code[16];
  CHECK_STATUS(otp_totp(secret, 20, t0, NULL, code, sizeof code), OTP_OK);
  otp_verdict v;
  CHECK_STATUS(otp_verify_totp(a, (const uint8_t *)key, strlen(key), secret, 20, code, strlen(code),
                               NULL, t0, &v), OTP_OK);
  CHECK_STATUS(otp_verify_totp(b, (const uint8_t *)key, strlen(key), secret, 20, code, strlen(code),
                               NULL, t0, &v), OTP_REPLAYED);
  CHECK_STATUS(otp_verify_totp(b, (const uint8_t *)key, strlen(key), secret, 20, "x", 1, NULL, t0, &v),
               OTP_MISMATCH);
  CHECK_STATUS(otp_verify_totp(a, (const uint8_t *)key, strlen(key), secret, 20, "x", 1, NULL, t0, &v),
               OTP_MISMATCH);
  CHECK(v.attempts_left == 98); /* the default budget of 100, two spent across both */
  CHECK_STATUS(otp_unlock_totp(b, (const uint8_t *)key, strlen(key)), OTP_OK);
  otp_engine_free(a);
  otp_engine_free(b);
}

/* otp_engine_new_redis_opts: the mutual-TLS server with the CA and client
 * certificate; without them it fails closed naming the handshake. The password
 * server as the ACL user given apart from the URL; a wrong password fails closed
 * naming authentication and never shows the password. */
static void test_tls_and_credentials(void) {
  const char *mtls = server("OTPENGINE_REDIS_MTLS_URL");
  const char *auth = server("OTPENGINE_REDIS_AUTH_URL");
  if (mtls == NULL || auth == NULL) return;
  otp_config c;
  otp_config_default(&c);
  otp_redis_options o;
  memset(&o, 0xff, sizeof o);
  otp_redis_options_default(&o);
  CHECK(o.key_namespace == NULL && o.ca_file == NULL && o.client_cert == NULL &&
        o.client_key == NULL && o.username == NULL && o.password == NULL && o.accept_eviction == 0);
  o.key_namespace = "otpengine-c-tls";
  o.ca_file = getenv("OTPENGINE_REDIS_TLS_CA");
  o.client_cert = getenv("OTPENGINE_REDIS_TLS_CLIENT_CERT");
  o.client_key = getenv("OTPENGINE_REDIS_TLS_CLIENT_KEY");
  otp_engine *e = NULL;
  CHECK_STATUS(otp_engine_new_redis_opts(&c, mtls, SECRET, sizeof SECRET - 1, &o, &e), OTP_OK);
  char code[16];
  CHECK_STATUS(otp_issue(e, KEY("alice"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  CHECK_STATUS(otp_verify(e, KEY("alice"), code, strlen(code), NULL, 0, NULL), OTP_OK);
  otp_engine_free(e);
  o.client_cert = o.client_key = NULL;
  e = (otp_engine *)(uintptr_t)0x1;
  CHECK_STATUS(otp_engine_new_redis_opts(&c, mtls, SECRET, sizeof SECRET - 1, &o, &e),
               OTP_BACKEND_UNAVAILABLE);
  CHECK(last_error_contains("TLS handshake failed"));
  CHECK(e == (otp_engine *)(uintptr_t)0x1);
  o.ca_file = "/nonexistent/ca.pem";
  CHECK_STATUS(otp_engine_new_redis_opts(&c, mtls, SECRET, sizeof SECRET - 1, &o, &e),
               OTP_INVALID_ARGUMENT);
  CHECK(last_error_contains("ca_file must be a readable PEM file, got /nonexistent/ca.pem"));

  otp_redis_options_default(&o);
  o.username = getenv("OTPENGINE_REDIS_ACL_USER");
  o.password = getenv("OTPENGINE_REDIS_ACL_PASSWORD");
  CHECK(o.username != NULL && o.password != NULL);
  CHECK_STATUS(otp_engine_new_redis_opts(&c, auth, SECRET, sizeof SECRET - 1, &o, &e), OTP_OK);
  CHECK_STATUS(otp_issue(e, KEY("bob"), NULL, 0, 0, code, sizeof code, NULL), OTP_OK);
  CHECK_STATUS(otp_verify(e, KEY("bob"), code, strlen(code), NULL, 0, NULL), OTP_OK);
  otp_engine_free(e);
  o.password = "wrong-hunter2";
  CHECK_STATUS(otp_engine_new_redis_opts(&c, auth, SECRET, sizeof SECRET - 1, &o, &e),
               OTP_BACKEND_UNAVAILABLE);
  CHECK(last_error_contains("authentication failed"));
  char message[512];
  otp_last_error(message, sizeof message);
  CHECK(strstr(message, "hunter2") == NULL);
  CHECK_STATUS(otp_engine_new_redis(&c, auth, SECRET, sizeof SECRET - 1, &e), OTP_BACKEND_UNAVAILABLE);
  CHECK(last_error_contains("authentication failed"));
}

/* A batch on Redis answers as in memory (one pipeline on a standalone server,
 * one call after the other on a cluster); what one instance issued in a batch
 * another verifies in one. */
static void test_batches_across_instances(const char *url) {
  otp_engine *a = redis_engine(url), *b = redis_engine(url);
  char k0[64], k1[64], codes[3][16], wrong[16];
  snprintf(k0, sizeof k0, "c-batch-%ld-%d", (long)time(NULL), rand());
  snprintf(k1, sizeof k1, "c-batch-%ld-%d", (long)time(NULL), rand());
  otp_batch_key keys[3] = {{KEY(k0)}, {KEY(k1)}, {(const uint8_t *)"", 0}};
  otp_issue_answer answers[3];
  CHECK_STATUS(otp_issue_many(a, keys, 3, NULL, 0, &codes[0][0], 16, answers), OTP_OK);
  CHECK(answers[0].status == OTP_OK && answers[1].status == OTP_OK && strlen(codes[1]) == 6);
  CHECK(answers[2].status == OTP_INVALID_ARGUMENT);
  char message[128];
  CHECK(otp_batch_error(2, message, sizeof message) > 0 && strstr(message, "key") != NULL);
  wrong_code(codes[1], wrong);
  otp_verify_item items[3] = {
      {KEY(k0), codes[0], 6, NULL, 0},
      {KEY(k1), wrong, 6, NULL, 0},
      {KEY(k0), codes[0], 6, NULL, 0},
  };
  otp_verdict verdicts[3];
  CHECK_STATUS(otp_verify_many(b, items, 3, verdicts), OTP_OK);
  CHECK(verdicts[0].status == OTP_OK);
  CHECK(verdicts[1].status == OTP_MISMATCH && verdicts[1].attempts_left == 4);
  CHECK(verdicts[2].status == OTP_NOT_FOUND); /* consumed by the item before */
  otp_engine_free(a);
  otp_engine_free(b);
}

int main(void) {
  srand((unsigned)time(NULL));
  test_an_unreachable_server_is_backend_unavailable();
  const char *url = server("OTPENGINE_REDIS_URL");
  if (url != NULL) {
    test_arguments_are_checked(url);
    test_two_instances_share_one_store(url);
    test_totp_across_instances(url);
    test_batches_across_instances(url);
  }
  const char *cluster = server("OTPENGINE_REDIS_CLUSTER");
  if (cluster != NULL) {
    test_two_instances_share_one_store(cluster);
    test_totp_across_instances(cluster);
    test_batches_across_instances(cluster);
  }
  test_tls_and_credentials();
  DONE();
}
