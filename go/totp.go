package otpengine

/*
#include <stdlib.h>
#include "otpengine_go.h"

static otp_status go_hotp(const uint8_t *secret, size_t secret_len, uint64_t counter,
                          uint32_t digits, uint32_t algorithm, char *code, size_t code_len,
                          char **err) {
	otp_status s = otp_hotp(secret, secret_len, counter, digits, algorithm, code, code_len);
	*err = go_last_error();
	return s;
}

static otp_status go_totp(const uint8_t *secret, size_t secret_len, uint64_t at,
                          const otp_totp_params *p, char *code, size_t code_len, char **err) {
	otp_status s = otp_totp(secret, secret_len, at, p, code, code_len);
	*err = go_last_error();
	return s;
}

static otp_status go_unlock_totp(uint64_t timeout_ms, otp_engine *e, const uint8_t *key, size_t key_len, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_unlock_totp(e, key, key_len);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_totp_uri(const uint8_t *secret, size_t secret_len, const char *issuer,
                              const char *account, const otp_totp_params *p, char *uri,
                              size_t uri_len, size_t *needed, char **err) {
	otp_status s = otp_totp_uri(secret, secret_len, issuer, account, p, uri, uri_len, needed);
	*err = go_last_error();
	return s;
}

static otp_status go_qr_svg(const uint8_t *text, size_t text_len, char *svg, size_t svg_len,
                            size_t *needed, char **err) {
	otp_status s = otp_qr_svg(text, text_len, svg, svg_len, needed);
	*err = go_last_error();
	return s;
}
*/
import "C"

import (
	"fmt"
	"math"
	"time"
	"unsafe"
)

// Hash is the HMAC hash of HOTP and TOTP codes (RFC 6238).
type Hash int

const (
	// SHA1: HMAC-SHA-1, the default, and what nearly every enrolment uses.
	SHA1 Hash = C.OTP_HASH_SHA1
	// SHA256: HMAC-SHA-256.
	SHA256 Hash = C.OTP_HASH_SHA256
	// SHA512: HMAC-SHA-512.
	SHA512 Hash = C.OTP_HASH_SHA512
)

// TOTPParams says how TOTP codes are computed and which time steps a verify
// accepts; start from DefaultTOTPParams. Bounds are the engine's: Digits 6..8,
// Period whole seconds 10s..5m, SkewBack and SkewAhead 0..10 steps.
type TOTPParams struct {
	Digits              int
	Period              time.Duration
	Algorithm           Hash
	SkewBack, SkewAhead int
}

// DefaultTOTPParams gives 6 digits, 30 s steps, SHA-1 and one step of skew each way.
func DefaultTOTPParams() TOTPParams {
	var c C.otp_totp_params
	C.otp_totp_params_default(&c)
	return TOTPParams{
		Digits:    int(c.digits),
		Period:    time.Duration(c.period_s) * time.Second,
		Algorithm: Hash(c.algorithm),
		SkewBack:  int(c.skew_back),
		SkewAhead: int(c.skew_ahead),
	}
}

func (p TOTPParams) toC() (C.otp_totp_params, error) {
	var c C.otp_totp_params
	var err error
	u32 := func(name string, v int) C.uint32_t {
		if v < 0 || uint64(v) > math.MaxUint32 {
			if err == nil {
				err = fmt.Errorf("%w: %s must be between 0 and %d, got %d", ErrInvalidArgument, name, uint32(math.MaxUint32), v)
			}
			return 0
		}
		return C.uint32_t(v)
	}
	if p.Period < 0 || p.Period%time.Second != 0 {
		return c, fmt.Errorf("%w: Period must be whole seconds, got %v", ErrInvalidArgument, p.Period)
	}
	c.digits = u32("Digits", p.Digits)
	c.period_s = u32("Period", int(p.Period/time.Second))
	c.algorithm = u32("Algorithm", int(p.Algorithm))
	c.skew_back = u32("SkewBack", p.SkewBack)
	c.skew_ahead = u32("SkewAhead", p.SkewAhead)
	return c, err
}

// unixSeconds is t as Unix seconds for the C API; the zero Time is now.
func unixSeconds(t time.Time) (C.uint64_t, error) {
	if t.IsZero() {
		t = time.Now()
	}
	if t.Unix() < 0 {
		return 0, fmt.Errorf("%w: the time must be at or after 1970-01-01 UTC, got %v", ErrInvalidArgument, t)
	}
	return C.uint64_t(t.Unix()), nil
}

// HOTP gives the HOTP code (RFC 4226) of secret (16..64 bytes) at counter, with
// digits (6..8) digits. Fails with ErrInvalidArgument, naming what was wrong.
func HOTP(secret []byte, counter uint64, digits int, alg Hash) (string, error) {
	if digits < 0 || alg < 0 {
		return "", fmt.Errorf("%w: digits and algorithm must not be negative, got %d and %d", ErrInvalidArgument, digits, int(alg))
	}
	var code [16]C.char
	var msg *C.char
	s := C.go_hotp(bytes(secret), C.size_t(len(secret)), C.uint64_t(counter), C.uint32_t(digits),
		C.uint32_t(alg), &code[0], C.size_t(len(code)), &msg)
	if s != C.OTP_OK {
		return "", statusError(s, msg)
	}
	return C.GoString(&code[0]), nil
}

// TOTP gives the TOTP code (RFC 6238) of secret (16..64 bytes) at time at (the
// zero Time is now) under p.
func TOTP(secret []byte, at time.Time, p TOTPParams) (string, error) {
	params, err := p.toC()
	if err != nil {
		return "", err
	}
	unix, err := unixSeconds(at)
	if err != nil {
		return "", err
	}
	var code [16]C.char
	var msg *C.char
	s := C.go_totp(bytes(secret), C.size_t(len(secret)), unix, &params, &code[0], C.size_t(len(code)), &msg)
	if s != C.OTP_OK {
		return "", statusError(s, msg)
	}
	return C.GoString(&code[0]), nil
}

// TOTPURI gives the enrolment URI an authenticator app scans
// (otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=...&digits=...&period=...),
// every parameter written out. The URI holds the secret: treat it as one.
func TOTPURI(secret []byte, issuer, account string, p TOTPParams) (string, error) {
	params, err := p.toC()
	if err != nil {
		return "", err
	}
	cIssuer, cAccount := C.CString(issuer), C.CString(account)
	defer C.free(unsafe.Pointer(cIssuer))
	defer C.free(unsafe.Pointer(cAccount))
	return grownText(256, func(buf *C.char, n C.size_t, needed *C.size_t, msg **C.char) C.otp_status {
		return C.go_totp_uri(bytes(secret), C.size_t(len(secret)), cIssuer, cAccount, &params,
			buf, n, needed, msg)
	})
}

// grownText runs call with a buffer of first bytes, and again with the size it
// reports on OTP_BUFFER_TOO_SMALL, and returns the text it wrote.
func grownText(first int, call func(buf *C.char, n C.size_t, needed *C.size_t, msg **C.char) C.otp_status) (string, error) {
	buf := make([]C.char, first)
	for {
		var needed C.size_t
		var msg *C.char
		switch s := call(&buf[0], C.size_t(len(buf)), &needed, &msg); s {
		case C.OTP_OK:
			return C.GoString(&buf[0]), nil
		case C.OTP_BUFFER_TOO_SMALL:
			C.free(unsafe.Pointer(msg))
			buf = make([]C.char, needed)
		default:
			return "", statusError(s, msg)
		}
	}
}

// QRSVG draws text (an enrolment URI from TOTPURI, say; up to 2,331 bytes) as
// a QR code in SVG, black on white, at least 200 pixels square, for an
// enrolment page. The SVG of an enrolment URI holds the secret.
func QRSVG(text string) (string, error) {
	raw := []byte(text)
	return grownText(4096, func(buf *C.char, n C.size_t, needed *C.size_t, msg **C.char) C.otp_status {
		return C.go_qr_svg(bytes(raw), C.size_t(len(raw)), buf, n, needed, msg)
	})
}

// VerifyTOTP checks an authenticator-app code (RFC 6238) for key, computed from
// secret (16..64 bytes, kept by the application, never by the engine) at time at
// (the zero Time is now) under p. The first right code for a step later than the
// key's last accepted one is Verified; the right code again is Replayed (not a
// failure); anything else spends one failure of the key's budget (Mismatch with
// AttemptsLeft, or Locked with RetryAfter once spent; while locked the code is
// not looked at). The engine's MaxFailuresPerKey must be on. TOTP state is apart
// from the key's random codes. Errors: ErrInvalidArgument, ErrCapacityExceeded,
// ErrBackendUnavailable, ErrClosed.
func (e *Engine) VerifyTOTP(key, secret []byte, code string, p TOTPParams, at time.Time) (Verdict, error) {
	return e.VerifyTOTPScopedContext(background, key, secret, code, p, at)
}

// UnlockTOTP lifts the lockout of key's TOTP state and clears its failure count
// (Unlock is for its random codes); true if there was a count. The last
// accepted step stays. Errors: ErrInvalidArgument, ErrBackendUnavailable, ErrClosed.
func (e *Engine) UnlockTOTP(key []byte) (bool, error) {
	return e.UnlockTOTPContext(background, key)
}

func unlockTOTPCall(t C.uint64_t, e *C.otp_engine, k *C.uint8_t, n C.size_t, msg **C.char) C.otp_status {
	return C.go_unlock_totp(t, e, k, n, msg)
}
