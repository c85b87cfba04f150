/* otpengine from C: issue a code, check a wrong and a right guess, read the stats.
 * Build: cc quickstart.c $(pkg-config --cflags --libs otpengine) */
#include <stdio.h>
#include <string.h>

#include <otpengine.h>

int main(void) {
  otp_config config;
  otp_config_default(&config);
  config.ttl_ms = 120000; /* two minutes */

  otp_engine *engine = NULL;
  if (otp_engine_new(&config, &engine) != OTP_OK) {
    char why[256];
    otp_last_error(why, sizeof why);
    fprintf(stderr, "otp_engine_new: %s\n", why);
    return 1;
  }

  const char *key = "+15551234567/login";
  char code[16];
  otp_issued issued;
  otp_status status = otp_issue(engine, (const uint8_t *)key, strlen(key), NULL, 0, 0, code, sizeof code, &issued);
  if (status != OTP_OK) {
    fprintf(stderr, "otp_issue: %s\n", otp_status_str(status));
    return 1;
  }
  printf("issued a %zu-digit code, valid for %llu s (sent by SMS, not printed)\n", strlen(code),
         (unsigned long long)(issued.expires_in_ms / 1000));

  uint32_t attempts_left = 0;
  status = otp_verify(engine, (const uint8_t *)key, strlen(key), "000000", 6, NULL, 0, &attempts_left);
  printf("a wrong guess: %s (%u attempts left)\n", otp_status_str(status), attempts_left);
  status = otp_verify(engine, (const uint8_t *)key, strlen(key), code, strlen(code), NULL, 0, NULL);
  printf("the right code: %s\n", otp_status_str(status));
  status = otp_verify(engine, (const uint8_t *)key, strlen(key), code, strlen(code), NULL, 0, NULL);
  printf("the same code again: %s\n", otp_status_str(status));

  otp_stats stats;
  otp_engine_stats(engine, &stats);
  printf("issued %llu, verified %llu, mismatched %llu (library %s)\n", (unsigned long long)stats.issued,
         (unsigned long long)stats.verified, (unsigned long long)stats.mismatched, otp_version());
  otp_engine_free(engine);
  return stats.verified == 1 ? 0 : 1;
}
