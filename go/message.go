package otpengine

/*
#include <stdlib.h>
#include "otpengine_go.h"

static otp_status go_sms_text(const char *code, const char *brand, uint64_t ttl_ms,
                              const char *template_text, const char *webotp_domain,
                              const char *app_hash, uint8_t allow_multipart, char *out,
                              size_t out_len, size_t *needed, char **err) {
	otp_status s = otp_sms_text(code, brand, ttl_ms, template_text, webotp_domain, app_hash,
	                            allow_multipart, out, out_len, needed);
	*err = go_last_error();
	return s;
}

static otp_status go_voice_text(const char *code, const char *brand, char *out, size_t out_len,
                                size_t *needed, char **err) {
	otp_status s = otp_voice_text(code, brand, out, out_len, needed);
	*err = go_last_error();
	return s;
}

static otp_status go_android_app_hash(const char *package_name, const uint8_t *cert,
                                      size_t cert_len, char *out, size_t out_len, char **err) {
	otp_status s = otp_android_app_hash(package_name, cert, cert_len, out, out_len);
	*err = go_last_error();
	return s;
}

static otp_status go_sms_segments(const uint8_t *text, size_t text_len, uint32_t *ucs2,
                                  uint32_t *segments, char **err) {
	otp_sms_encoding encoding = OTP_SMS_GSM7;
	otp_status s = otp_sms_segments(text, text_len, &encoding, segments);
	*ucs2 = encoding == OTP_SMS_UCS2;
	*err = go_last_error();
	return s;
}
*/
import "C"

import (
	"time"
	"unsafe"
)

// SMSOptions is what SMSText adds to, or changes in, the default text. An
// empty string leaves that part out.
type SMSOptions struct {
	// Template replaces "{brand}: your code is {code}. It expires in
	// {minutes}. Do not share it."; it must hold {code}, and may hold {brand}
	// and {minutes} (whole minutes rounded down, seconds under a minute).
	Template string
	// WebOTPDomain is the host of the site the code is for: it adds the
	// origin-bound last line "@example.com #123456" (WICG sms-one-time-codes),
	// which browsers (WebOTP) and phone keyboards fill in on that site only.
	WebOTPDomain string
	// AndroidAppHash is the app's SMS Retriever hash (AndroidAppHash), on a
	// line of its own before the origin-bound line.
	AndroidAppHash string
	// AllowMultipart allows a text longer than one SMS segment.
	AllowMultipart bool
}

// optionalCString is NULL for an empty string, else a C copy to free.
func optionalCString(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// SMSText is the SMS that carries code for brand, valid for ttl (1s..24h).
// Errors (ErrInvalidArgument) name what is wrong, also a text longer than one
// SMS segment without AllowMultipart.
func SMSText(code, brand string, ttl time.Duration, opts SMSOptions) (string, error) {
	cCode, cBrand := C.CString(code), C.CString(brand)
	cTemplate, cDomain, cHash := optionalCString(opts.Template), optionalCString(opts.WebOTPDomain),
		optionalCString(opts.AndroidAppHash)
	for _, p := range []*C.char{cCode, cBrand, cTemplate, cDomain, cHash} {
		defer C.free(unsafe.Pointer(p))
	}
	ms := ttl.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	var multipart C.uint8_t
	if opts.AllowMultipart {
		multipart = 1
	}
	return grownText(256, func(buf *C.char, n C.size_t, needed *C.size_t, msg **C.char) C.otp_status {
		return C.go_sms_text(cCode, cBrand, C.uint64_t(ms), cTemplate, cDomain, cHash, multipart,
			buf, n, needed, msg)
	})
}

// VoiceText is what a voice call says: "Your Acme code is 1, 2, 3, 4, 5, 6.
// Again: 1, 2, 3, 4, 5, 6."
func VoiceText(code, brand string) (string, error) {
	cCode, cBrand := C.CString(code), C.CString(brand)
	defer C.free(unsafe.Pointer(cCode))
	defer C.free(unsafe.Pointer(cBrand))
	return grownText(256, func(buf *C.char, n C.size_t, needed *C.size_t, msg **C.char) C.otp_status {
		return C.go_voice_text(cCode, cBrand, buf, n, needed, msg)
	})
}

// AndroidAppHash is the 11-character hash Google's SMS Retriever API looks for
// in an SMS, from the app's package name and the DER bytes of its signing
// certificate, by Google's recipe.
func AndroidAppHash(packageName string, signingCertificate []byte) (string, error) {
	cName := C.CString(packageName)
	defer C.free(unsafe.Pointer(cName))
	var out [12]C.char
	var msg *C.char
	s := C.go_android_app_hash(cName, bytes(signingCertificate), C.size_t(len(signingCertificate)),
		&out[0], C.size_t(len(out)), &msg)
	if s != C.OTP_OK {
		return "", statusError(s, msg)
	}
	return C.GoString(&out[0]), nil
}

// SMSSegments is the encoding text needs ("GSM-7", with its extension table,
// or "UCS-2") and the SMS segments it is billed as.
func SMSSegments(text string) (encoding string, segments int, err error) {
	raw := []byte(text)
	var ucs2, count C.uint32_t
	var msg *C.char
	if s := C.go_sms_segments(bytes(raw), C.size_t(len(raw)), &ucs2, &count, &msg); s != C.OTP_OK {
		return "", 0, statusError(s, msg)
	}
	if ucs2 != 0 {
		return "UCS-2", int(count), nil
	}
	return "GSM-7", int(count), nil
}
