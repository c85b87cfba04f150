package otpengine

/*
#cgo noescape go_issue_scoped
#cgo nocallback go_issue_scoped
#cgo noescape go_verify_scoped
#cgo nocallback go_verify_scoped
#include <stdlib.h>
#include <string.h>
#include "otpengine_go.h"

static otp_status go_issue_scoped(uint64_t timeout_ms, const otp_engine *e, const uint8_t *key, size_t key_len,
                                  const uint8_t *ctx, size_t ctx_len, uint64_t ttl_ms,
                                  const otp_scope *scopes, size_t scope_count, char *code,
                                  size_t code_len, otp_issued *issued, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_issue_scoped(e, key, key_len, ctx, ctx_len, ttl_ms, scopes, scope_count,
	                                code, code_len, issued);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_verify_scoped(uint64_t timeout_ms, const otp_engine *e, const uint8_t *key, size_t key_len,
                                   const char *code, size_t code_len, const uint8_t *ctx,
                                   size_t ctx_len, const otp_scope *scopes, size_t scope_count,
                                   otp_verdict *v, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_verify_scoped(e, key, key_len, code, code_len, ctx, ctx_len, scopes,
	                                 scope_count, v);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_verify_totp_scoped(uint64_t timeout_ms, const otp_engine *e, const uint8_t *key, size_t key_len,
                                        const uint8_t *secret, size_t secret_len,
                                        const char *code, size_t code_len,
                                        const otp_totp_params *p, uint64_t at,
                                        const otp_scope *scopes, size_t scope_count,
                                        otp_verdict *v, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_verify_totp_scoped(e, key, key_len, secret, secret_len, code, code_len, p,
	                                      at, scopes, scope_count, v);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_unlock_scope(uint64_t timeout_ms, const otp_engine *e, const char *name,
                                  const uint8_t *value, size_t value_len, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_unlock_scope(e, name, value, value_len);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_prometheus(const otp_engine *e, char *out, size_t out_len, size_t *needed,
                                char **err) {
	otp_status s = otp_prometheus(e, out, out_len, needed);
	*err = go_last_error();
	return s;
}

static otp_status go_ip_scope(const char *addr, char *out, size_t out_len, char **err) {
	otp_status s = otp_ip_scope(addr, out, out_len);
	*err = go_last_error();
	return s;
}
*/
import "C"

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// ScopeLimit gives a scope name its budgets (Config.ScopeLimits, up to 8):
// issues per IssueWindow and failed verifies per FailureWindow for each value
// of the scope (each client address, each phone prefix). 0 is no limit; a
// window is 1s..24h, unused when its count is 0. Failure budgets suit narrow
// scopes (an address, a tenant): on a broad one ("global", a country prefix)
// one attacker could lock everyone out, so give those issue limits only.
type ScopeLimit struct {
	Name          string // 1..31 bytes of [a-z0-9_-], unique
	MaxIssues     int
	IssueWindow   time.Duration
	MaxFailures   int
	FailureWindow time.Duration
}

// Scope is a scope a call belongs to: the Name of a configured ScopeLimit and
// this call's Value of it (IPScope of the client's address, a phone prefix,
// a tenant id; empty for a scope with one value, like "global").
type Scope struct {
	Name  string
	Value []byte
}

// IssueScoped is Issue (ttl 0: the engine's TTL) for a key that belongs to
// scopes: allowed only when the key's own limits and every scope's allow it,
// then counted on each. A refusal is *RateLimitedError with the longest wait
// among the limits that refuse and, in Scope, the scope that gives it (empty:
// the key's own limits). A scope name with no configured limit, or named
// twice, is ErrInvalidArgument and counts nothing.
func (e *Engine) IssueScoped(key, context []byte, ttl time.Duration, scopes ...Scope) (string, time.Duration, error) {
	return e.IssueScopedContext(background, key, context, ttl, scopes...)
}

// issueIn is every issue: ttlMs 0 is the engine's TTL, scopes may be none.
func (e *Engine) issueIn(ctx context.Context, key, data []byte, ttlMs uint64, scopes []Scope) (string, time.Duration, error) {
	if err := scopeNamesFit(scopes); err != nil {
		return "", 0, err
	}
	timeout, err := callTimeout(ctx)
	if err != nil {
		return "", 0, err
	}
	cs, count, release := cScopes(scopes)
	defer release()
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return "", 0, ErrClosed
	}
	var code [16]C.char
	var issued C.otp_issued
	var msg *C.char
	s := C.go_issue_scoped(timeout, e.ptr, bytes(key), C.size_t(len(key)), bytes(data), C.size_t(len(data)),
		C.uint64_t(ttlMs), cs, count, &code[0], C.size_t(len(code)), &issued, &msg)
	switch s {
	case C.OTP_OK:
		return C.GoString(&code[0]), ms(issued.expires_in_ms), nil
	case C.OTP_RATE_LIMITED:
		C.free(unsafe.Pointer(msg))
		return "", 0, &RateLimitedError{RetryAfter: ms(issued.retry_after_ms), Scope: C.GoString(&issued.scope[0])}
	case C.OTP_LOCKED:
		C.free(unsafe.Pointer(msg))
		return "", 0, &LockedError{RetryAfter: ms(issued.retry_after_ms)}
	}
	return "", 0, ended(ctx, statusError(s, msg))
}

// VerifyScoped is Verify for a call that belongs to scopes. A scope that has
// spent its failure budget answers Locked (with RetryAfter) without the code
// being looked at; a counted mismatch counts on the key and on every scope
// with a failure budget; Verified resets the key's count, not a scope's.
func (e *Engine) VerifyScoped(key []byte, code string, context []byte, scopes ...Scope) (Verdict, error) {
	return e.verifyIn(background, key, code, context, scopes)
}

// verifyIn is every verify of a sent code.
func (e *Engine) verifyIn(ctx context.Context, key []byte, code string, data []byte, scopes []Scope) (Verdict, error) {
	return e.verifyWith(ctx, scopes, func(timeout C.uint64_t, cs *C.otp_scope, count C.size_t, v *C.otp_verdict, msg **C.char) C.otp_status {
		return C.go_verify_scoped(timeout, e.ptr, bytes(key), C.size_t(len(key)), codePointer(code), C.size_t(len(code)),
			bytes(data), C.size_t(len(data)), cs, count, v, msg)
	})
}

// VerifyTOTPScoped is VerifyTOTP for a call that belongs to scopes, with the
// scope rules of VerifyScoped.
func (e *Engine) VerifyTOTPScoped(key, secret []byte, code string, p TOTPParams, at time.Time, scopes ...Scope) (Verdict, error) {
	return e.VerifyTOTPScopedContext(background, key, secret, code, p, at, scopes...)
}

// VerifyTOTPScopedContext is VerifyTOTPScoped under ctx (see IssueContext).
func (e *Engine) VerifyTOTPScopedContext(ctx context.Context, key, secret []byte, code string, p TOTPParams, at time.Time, scopes ...Scope) (Verdict, error) {
	params, err := p.toC()
	if err != nil {
		return Verdict{}, err
	}
	unix, err := unixSeconds(at)
	if err != nil {
		return Verdict{}, err
	}
	return e.verifyWith(ctx, scopes, func(timeout C.uint64_t, cs *C.otp_scope, count C.size_t, v *C.otp_verdict, msg **C.char) C.otp_status {
		return C.go_verify_totp_scoped(timeout, e.ptr, bytes(key), C.size_t(len(key)), bytes(secret), C.size_t(len(secret)),
			codePointer(code), C.size_t(len(code)), &params, unix, cs, count, v, msg)
	})
}

// verifyWith is what every verify does around its own C call: the scopes
// checked and copied into C memory, ctx's timeout, the engine held open, the
// verdict (or error) read back.
func (e *Engine) verifyWith(ctx context.Context, scopes []Scope, call func(C.uint64_t, *C.otp_scope, C.size_t, *C.otp_verdict, **C.char) C.otp_status) (Verdict, error) {
	if err := scopeNamesFit(scopes); err != nil {
		return Verdict{}, err
	}
	timeout, err := callTimeout(ctx)
	if err != nil {
		return Verdict{}, err
	}
	cs, count, release := cScopes(scopes)
	defer release()
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return Verdict{}, ErrClosed
	}
	var v C.otp_verdict
	var msg *C.char
	s := call(timeout, cs, count, &v, &msg)
	verdict, err := verdictOf(s, v, msg)
	return verdict, ended(ctx, err)
}

// UnlockScope lifts the failure lockout of the scope name = value and clears
// its counts (a support desk unblocking an office's shared address); true if
// it had a count in a running window.
func (e *Engine) UnlockScope(name string, value []byte) (bool, error) {
	return e.UnlockScopeContext(background, name, value)
}

// UnlockScopeContext is UnlockScope under ctx (see IssueContext).
func (e *Engine) UnlockScopeContext(ctx context.Context, name string, value []byte) (bool, error) {
	if err := scopeNamesFit([]Scope{{Name: name}}); err != nil {
		return false, err
	}
	timeout, err := callTimeout(ctx)
	if err != nil {
		return false, err
	}
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return false, ErrClosed
	}
	var msg *C.char
	switch s := C.go_unlock_scope(timeout, e.ptr, cName, bytes(value), C.size_t(len(value)), &msg); s {
	case C.OTP_OK:
		return true, nil
	case C.OTP_NOT_FOUND:
		return false, nil
	default:
		return false, ended(ctx, statusError(s, msg))
	}
}

// Prometheus gives the engine's stats in the Prometheus text format: every
// counter, otpengine_rate_limited_total with a scope label for each scope that
// refused (scope="key" for the key's own limits), and the gauges.
func (e *Engine) Prometheus() (string, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return "", ErrClosed
	}
	buf := make([]C.char, 4096)
	for {
		var needed C.size_t
		var msg *C.char
		s := C.go_prometheus(e.ptr, &buf[0], C.size_t(len(buf)), &needed, &msg)
		switch s {
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

// IPScope gives the scope value for a client address: an IPv4 address as its
// /32 ("203.0.113.7/32"), an IPv6 address masked to its /64
// ("2001:db8:1:2::/64"), since one host is routinely given a whole /64.
func IPScope(addr string) (string, error) {
	cAddr := C.CString(addr)
	defer C.free(unsafe.Pointer(cAddr))
	var out [64]C.char
	var msg *C.char
	if s := C.go_ip_scope(cAddr, &out[0], C.size_t(len(out)), &msg); s != C.OTP_OK {
		return "", statusError(s, msg)
	}
	return C.GoString(&out[0]), nil
}

// scopeNamesFit refuses a name with a NUL byte, which a C string cannot carry
// (it would end the name early and name another scope).
func scopeNamesFit(scopes []Scope) error {
	for _, s := range scopes {
		if strings.IndexByte(s.Name, 0) >= 0 {
			return fmt.Errorf("%w: scope names cannot hold a NUL byte, got %q", ErrInvalidArgument, s.Name)
		}
	}
	return nil
}

// cScopes copies scopes into C memory (cgo forbids passing Go memory that
// holds Go pointers); release frees it.
func cScopes(scopes []Scope) (*C.otp_scope, C.size_t, func()) {
	if len(scopes) == 0 {
		return nil, 0, func() {}
	}
	size := C.size_t(unsafe.Sizeof(C.otp_scope{})) * C.size_t(len(scopes))
	array := (*C.otp_scope)(C.malloc(size))
	entries := unsafe.Slice(array, len(scopes))
	for i, s := range scopes {
		entries[i].name = C.CString(s.Name)
		// An empty value may be NULL (malloc(0)), which the engine accepts.
		entries[i].value = (*C.uint8_t)(C.CBytes(s.Value))
		entries[i].value_len = C.size_t(len(s.Value))
	}
	return array, C.size_t(len(scopes)), func() {
		for i := range entries {
			C.free(unsafe.Pointer(entries[i].name))
			C.free(unsafe.Pointer(entries[i].value))
		}
		C.free(unsafe.Pointer(array))
	}
}

// scopeLimitsToC fills the config's scope limits. A name is copied with its
// NUL when it fits, and without one when it does not, so that the engine, not
// this package, says what is wrong with it; more than 8 limits pass their
// count, which the engine refuses by name.
func scopeLimitsToC(c *C.otp_config, limits []ScopeLimit, u32 func(string, int) C.uint32_t, msOf func(string, time.Duration) C.uint64_t) {
	c.scope_limit_count = C.uint32_t(len(limits))
	for i, l := range limits {
		if i >= len(c.scope_limits) {
			break
		}
		dst := &c.scope_limits[i]
		for k := range dst.name {
			dst.name[k] = 0
		}
		name := l.Name
		if strings.IndexByte(name, 0) >= 0 {
			// A NUL would end the name early: fill the field without one, which
			// the engine refuses by name.
			name = strings.Repeat("x", len(dst.name))
		}
		for k := 0; k < len(name) && k < len(dst.name); k++ {
			dst.name[k] = C.char(name[k])
		}
		dst.max_issues = u32("ScopeLimits.MaxIssues", l.MaxIssues)
		dst.issue_window_ms = msOf("ScopeLimits.IssueWindow", l.IssueWindow)
		dst.max_failures = u32("ScopeLimits.MaxFailures", l.MaxFailures)
		dst.failure_window_ms = msOf("ScopeLimits.FailureWindow", l.FailureWindow)
	}
}

// codePointer gives C a pointer to code's bytes (a valid one when empty).
func codePointer(code string) *C.char {
	if len(code) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyByte[0]))
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(code)))
}

// verdictOf turns a verify's status and otp_verdict into a Verdict.
func verdictOf(s C.otp_status, v C.otp_verdict, msg *C.char) (Verdict, error) {
	switch s {
	case C.OTP_OK:
		return Verdict{Status: Verified}, nil
	case C.OTP_REPLAYED:
		return Verdict{Status: Replayed}, nil
	case C.OTP_MISMATCH:
		return Verdict{Status: Mismatch, AttemptsLeft: int(v.attempts_left)}, nil
	case C.OTP_LOCKED:
		return Verdict{Status: Locked, RetryAfter: ms(v.retry_after_ms)}, nil
	case C.OTP_EXPIRED:
		return Verdict{Status: Expired}, nil
	case C.OTP_NOT_FOUND:
		return Verdict{Status: NotFound}, nil
	}
	return Verdict{}, statusError(s, msg)
}
