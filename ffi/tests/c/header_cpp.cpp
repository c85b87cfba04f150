// The header compiles as C++ (extern "C" guards) and its types are usable there.
#include "otpengine.h"

#include <cstring>

int main() {
  otp_config config;
  otp_config_default(&config);
  otp_status status = OTP_OK;
  otp_stats stats = {};
  otp_issued issued = {};
  (void)stats;
  (void)issued;
  return std::strlen(otp_status_str(status)) > 0 && config.alphabet == OTP_ALPHABET_DIGITS ? 0 : 1;
}
