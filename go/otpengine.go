// Package otpengine issues and verifies one-time passwords: uniform codes that
// work once, within their time, with attempt and rate limits per key, bound to
// a context if you like, and never stored in plaintext.
//
// It is a thin layer over the otpengine C library (libotpengine), which holds
// every rule; this package translates types and errors only.
//
//	engine, err := otpengine.New(otpengine.DefaultConfig())
//	if err != nil { ... }
//	defer engine.Close()
//	code, expiresIn, err := engine.Issue([]byte("+15551234567/login"), nil)
//	// send code by SMS; later:
//	verdict, err := engine.Verify([]byte("+15551234567/login"), typed, nil)
//	if verdict.Status == otpengine.Verified { ... }
//
// With Config.RedisURL and Config.Secret set, the engine keeps its state in
// Redis, shared by every instance of a service; the calls are the same, and
// any of them may then fail with ErrBackendUnavailable (never a Verified).
package otpengine

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo noescape go_revoke
#cgo nocallback go_revoke
#cgo noescape go_unlock
#cgo nocallback go_unlock
#cgo noescape go_stats
#cgo nocallback go_stats
#include <stdlib.h>
#include "otpengine_go.h"

static otp_status go_engine_new_redis(const otp_config *config, const char *url,
                                      const uint8_t *secret, size_t secret_len,
                                      const otp_redis_options *options, otp_engine **out,
                                      char **err) {
	otp_status s = otp_engine_new_redis_opts(config, url, secret, secret_len, options, out);
	*err = go_last_error();
	return s;
}

// timeout_ms (every call that may wait on Redis takes one): this thread's
// call timeout for the call alone, set and lifted in the same C call, so that
// a context's deadline reaches the engine; 0: the engine's response timeout.
static otp_status go_ping(uint64_t timeout_ms, otp_engine *e, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_ping(e);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_revoke(uint64_t timeout_ms, otp_engine *e, const uint8_t *key, size_t key_len, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_revoke(e, key, key_len);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_unlock(uint64_t timeout_ms, otp_engine *e, const uint8_t *key, size_t key_len, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_unlock(e, key, key_len);
	*err = go_last_error();
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_stats(uint64_t timeout_ms, const otp_engine *e, otp_stats *out) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_engine_stats(e, out);
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ABIVersion is the C ABI version this package was compiled against
// (OTPENGINE_ABI_VERSION of otpengine.h). The shared library's soname carries
// it (libotpengine.so.N), so a program built with -tags otpengine_shared never
// loads a library of another ABI; the package also checks at start-up that the
// library it runs with says the same, and panics naming both numbers if not.
const ABIVersion = C.OTPENGINE_ABI_VERSION

func abiVersionOfLibrary() uint32 { return uint32(C.otp_abi_version()) }

func init() {
	if got := abiVersionOfLibrary(); got != ABIVersion {
		panic(fmt.Sprintf("otpengine: libotpengine has C ABI version %d, this package was built for %d: rebuild against the installed header", got, ABIVersion))
	}
}

// Alphabet is the set of symbols codes are made of.
type Alphabet int

const (
	// Digits: 0-9.
	Digits Alphabet = C.OTP_ALPHABET_DIGITS
	// Alphanumeric: 23456789ABCDEFGHJKLMNPQRSTUVWXYZ, case-insensitive on input.
	Alphanumeric Alphabet = C.OTP_ALPHABET_ALPHANUMERIC
)

// Config holds an engine's settings; start from DefaultConfig. Bounds are the
// engine's (see the README); a value out of bounds makes New fail with
// ErrInvalidArgument and a message naming the field as the C API spells it
// (TTL is ttl_ms, ResendCooldown resend_cooldown_ms, and so on).
type Config struct {
	CodeLength         int           // 4..10 (6)
	Alphabet           Alphabet      // Digits or Alphanumeric
	TTL                time.Duration // 1s..24h (5m)
	MaxAttempts        int           // wrong guesses per code, 1..100 (5)
	ResendCooldown     time.Duration // 0 (off)..1h (30s)
	MaxIssuesPerWindow int           // 0 (off)..1000 (5)
	IssueWindow        time.Duration // 1s..24h (10m)
	MaxFailuresPerKey  int           // across codes, 0 (off)..10000 (100)
	Lockout            time.Duration // the first lockout, 1s..30 days (1h)
	CodesPerKey        int           // 1..4 (1)
	Capacity           uint64        // keys with any state, 1..2^32 (10,000,000)
	Shards             int           // power of two, 1..65536; 0 picks the default
	ManualClock        bool          // time moves only by Advance (for tests)

	// EscalateLockouts (true in DefaultConfig): each time a key spends its
	// failure budget again before a success or an Unlock, its lockout doubles,
	// up to MaxLockout (Lockout..365 days, 30 days by default); failures are
	// remembered MaxLockout after the last one, and a year longer once the key
	// has been locked out. False: every lockout is Lockout long, and failures
	// are forgotten one Lockout after the last.
	EscalateLockouts bool
	MaxLockout       time.Duration

	// RedisURL, when set, keeps the engine's state in Redis, shared by every
	// engine built over the same server with the same Secret (the instances of
	// one service): redis://[user:password@]host:port[/db], redis+unix:///path,
	// or a cluster as redis+cluster://host:port,host:port,... Capacity holds on
	// a standalone server only; Shards is unused.
	RedisURL string
	// Secret keys the digests of keys and codes: 16..1024 bytes, the same on
	// every instance. Required with RedisURL; without it, it keys an
	// in-memory engine's digests (nil: a random one per engine).
	Secret []byte
	// RedisConnectTimeout and RedisResponseTimeout bound the wait for a
	// connection and for an answer, 1ms..1m (0: the engine's default, 1s);
	// past them a call fails with ErrBackendUnavailable. With RedisURL only.
	RedisConnectTimeout  time.Duration
	RedisResponseTimeout time.Duration
	// RedisNamespace prefixes every Redis key the engine writes, so that several
	// engines or applications can share one Redis ("" is "otpengine").
	RedisNamespace string
	// RedisCAFile is the PEM file of the CA that signs the server's certificate,
	// for a rediss:// URL ("" is the system's roots). RedisClientCert and
	// RedisClientKey are the PEM files of a client certificate and its key, for
	// servers that require mutual TLS. The server's certificate and host name
	// are always checked.
	RedisCAFile     string
	RedisClientCert string
	RedisClientKey  string
	// RedisUsername and RedisPassword are the ACL user and password, for
	// callers who keep credentials out of the URL; they override the URL's.
	RedisUsername string
	RedisPassword Password
	// RedisAcceptEviction lets New use a server whose maxmemory-policy evicts
	// keys (an evicted key is a lost lockout or replay guard); without it such
	// a server is refused with ErrInvalidArgument.
	RedisAcceptEviction bool
	// RedisExactCounts keeps the store's key indexes, so that Stats.Live
	// counts and a standalone server enforces Capacity (they cost more than
	// half of each key's memory in Redis); without it Live reads 0 and
	// maxmemory bounds the store.
	RedisExactCounts bool

	// ScopeLimits are the budgets of the scopes a call may name (IssueScoped,
	// VerifyScoped), up to 8 with distinct names; none by default.
	ScopeLimits []ScopeLimit
}

// Password is a credential: printing it (%v, %+v, %#v) shows *** instead.
type Password string

// String hides the password.
func (Password) String() string { return "***" }

// GoString hides the password.
func (Password) GoString() string { return `"***"` }

// Status is the outcome of a Verify. The zero Status is none of the outcomes:
// Verify returns it, in a zero Verdict, together with an error, so that a
// caller who forgets to check the error never reads a failure as Verified.
type Status int

const (
	// Verified: the right code, in time, with the right context; now consumed.
	Verified Status = iota + 1
	// Mismatch: a wrong code or context; the failure was counted.
	Mismatch
	// Locked: the code's attempts are used up, or the key is locked out.
	Locked
	// Expired: the code's time is over.
	Expired
	// NotFound: no code is pending for the key.
	NotFound
	// Replayed (VerifyTOTP only): the right authenticator code for a time step
	// the key already accepted; a code works once. Not counted as a failure.
	Replayed
)

var statusNames = [...]string{"Verified", "Mismatch", "Locked", "Expired", "NotFound", "Replayed"}

// String gives the status's name, e.g. "Verified".
func (s Status) String() string {
	if s >= Verified && int(s) <= len(statusNames) {
		return statusNames[s-Verified]
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Verdict is what Verify answers.
type Verdict struct {
	Status       Status
	AttemptsLeft int           // wrong guesses left, on Mismatch; 0 otherwise
	RetryAfter   time.Duration // on Locked: until the lockout ends (0 for a burned code)
}

// Stats counts the engine's answers since it was built (every counter of the
// C ABI's otp_stats): Unavailable the calls that failed with
// ErrBackendUnavailable, CapacityExceeded those refused as full; Live the keys
// with a pending code now and Held those (and scope values) with any state
// (with RedisURL: in the whole store). Per-scope counts are in Prometheus().
type Stats struct {
	Issued, Verified, Mismatched, Locked, Expired, RateLimited, Revoked, Live, Unavailable uint64
	NotFound, CapacityExceeded, Held, Replayed                                             uint64
}

// RateLimitedError is returned by Issue inside the key's cooldown or beyond its
// window, and by IssueScoped when a scope's budget is spent: RetryAfter is the
// longest wait among the limits that refuse, Scope the name of the scope that
// gives it (empty: the key's own limits).
type RateLimitedError struct {
	RetryAfter time.Duration
	Scope      string
}

func (e *RateLimitedError) Error() string {
	if e.Scope != "" {
		return fmt.Sprintf("otpengine: rate limited by scope %q, retry after %v", e.Scope, e.RetryAfter)
	}
	return fmt.Sprintf("otpengine: rate limited, retry after %v", e.RetryAfter)
}

// LockedError is returned by Issue for a key locked out after too many failed verifies.
type LockedError struct{ RetryAfter time.Duration }

func (e *LockedError) Error() string {
	return fmt.Sprintf("otpengine: key locked, retry after %v", e.RetryAfter)
}

var (
	// ErrCapacityExceeded: the engine holds state for its capacity of keys.
	ErrCapacityExceeded = errors.New("otpengine: capacity exceeded")
	// ErrInvalidArgument: a value out of bounds; the wrapping error says which.
	ErrInvalidArgument = errors.New("otpengine: invalid argument")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("otpengine: engine closed")
	// ErrBackendUnavailable: an engine with RedisURL could not reach Redis, or
	// Redis did not answer in time; the wrapping error names the server and why.
	// Nothing was verified. The engine reconnects by itself.
	ErrBackendUnavailable = errors.New("otpengine: backend unavailable")
)

// Engine is an otpengine instance; safe for concurrent use by many goroutines.
// Close it when done (a finalizer frees one that is never closed).
type Engine struct {
	mu  sync.RWMutex // calls hold it shared; Close holds it exclusively
	ptr *C.otp_engine
}

// finalized counts engines freed by the finalizer (for the tests).
var finalized atomic.Int64

// emptyByte gives C a valid pointer for an empty slice, so that the engine, not
// this package, decides what an empty key means.
var emptyByte [1]byte

// DefaultConfig returns the engine's defaults.
func DefaultConfig() Config {
	var c C.otp_config
	C.otp_config_default(&c)
	return Config{
		CodeLength:         int(c.code_length),
		Alphabet:           Alphabet(c.alphabet),
		TTL:                ms(c.ttl_ms),
		MaxAttempts:        int(c.max_attempts),
		ResendCooldown:     ms(c.resend_cooldown_ms),
		MaxIssuesPerWindow: int(c.max_issues_per_window),
		IssueWindow:        ms(c.issue_window_ms),
		MaxFailuresPerKey:  int(c.max_failures_per_key),
		Lockout:            ms(c.lockout_ms),
		CodesPerKey:        int(c.codes_per_key),
		Capacity:           uint64(c.capacity),
		Shards:             int(c.shards),
		ManualClock:        c.manual_clock != 0,
		EscalateLockouts:   c.escalate_lockouts != 0,
		MaxLockout:         ms(c.max_lockout_ms),

		RedisConnectTimeout:  ms(c.redis_connect_timeout_ms),
		RedisResponseTimeout: ms(c.redis_response_timeout_ms),
	}
}

// New builds an engine: in memory, or over Redis when cfg.RedisURL is set. It
// fails with ErrInvalidArgument for a bad value (the error names it), or with
// ErrBackendUnavailable when Redis cannot be reached.
func New(cfg Config) (*Engine, error) {
	c, err := toC(cfg)
	if err != nil {
		return nil, err
	}
	var ptr *C.otp_engine
	var msg *C.char
	var s C.otp_status
	// Which settings go together (a secret or Redis options without a URL)
	// is the engine's rule: everything given goes to it as given.
	{
		var url *C.char
		if cfg.RedisURL != "" {
			url = C.CString(cfg.RedisURL)
			defer C.free(unsafe.Pointer(url))
		}
		var o C.otp_redis_options
		C.otp_redis_options_default(&o)
		var cStrings []*C.char
		optional := func(v string) *C.char {
			if v == "" {
				return nil
			}
			p := C.CString(v)
			cStrings = append(cStrings, p)
			return p
		}
		o.key_namespace = optional(cfg.RedisNamespace)
		o.ca_file = optional(cfg.RedisCAFile)
		o.client_cert = optional(cfg.RedisClientCert)
		o.client_key = optional(cfg.RedisClientKey)
		o.username = optional(cfg.RedisUsername)
		o.password = optional(string(cfg.RedisPassword))
		if cfg.RedisAcceptEviction {
			o.accept_eviction = 1
		}
		if cfg.RedisExactCounts {
			o.exact_counts = 1
		}
		defer func() {
			for _, p := range cStrings {
				C.free(unsafe.Pointer(p))
			}
		}()
		var secret *C.uint8_t // NULL: none given
		if len(cfg.Secret) > 0 {
			secret = bytes(cfg.Secret)
		}
		s = C.go_engine_new_redis(&c, url, secret, C.size_t(len(cfg.Secret)), &o, &ptr, &msg)
	}
	if s != C.OTP_OK {
		return nil, statusError(s, msg)
	}
	e := &Engine{ptr: ptr}
	runtime.SetFinalizer(e, func(e *Engine) {
		if e.free() {
			finalized.Add(1)
		}
	})
	return e, nil
}

// Issue issues a code for key, bound to context (nil: none), valid for the engine's TTL.
// It returns *RateLimitedError or *LockedError (use errors.As), ErrCapacityExceeded,
// ErrInvalidArgument, ErrBackendUnavailable or ErrClosed (use errors.Is).
func (e *Engine) Issue(key, context []byte) (code string, expiresIn time.Duration, err error) {
	return e.issue(key, context, 0)
}

// IssueTTL is Issue with a TTL for this code only (1s..24h).
func (e *Engine) IssueTTL(key, context []byte, ttl time.Duration) (string, time.Duration, error) {
	if ttl <= 0 {
		return "", 0, fmt.Errorf("%w: ttl must be positive, got %v", ErrInvalidArgument, ttl)
	}
	// Rounded up, never to 0 (which the C API reads as "the engine's ttl"): the
	// engine then judges the value itself.
	return e.issue(key, context, ceilMillis(ttl))
}

func (e *Engine) issue(key, context []byte, ttlMs uint64) (string, time.Duration, error) {
	return e.issueIn(background, key, context, ttlMs, nil)
}

// Verify checks what a person typed for key with context (nil: none). Spaces and
// hyphens are ignored. It returns an error only for bad arguments, a closed
// engine or an unreachable Redis (ErrBackendUnavailable); every other outcome
// is a Verdict.
func (e *Engine) Verify(key []byte, code string, context []byte) (Verdict, error) {
	return e.verifyIn(background, key, code, context, nil)
}

// Revoke drops the key's codes; true if one was pending. Limits stay. It fails
// with ErrInvalidArgument, ErrBackendUnavailable or ErrClosed.
func (e *Engine) Revoke(key []byte) (bool, error) {
	return e.RevokeContext(context.Background(), key)
}

// Unlock lifts the key's lockout and clears its failure count; true if there
// was one. It fails like Revoke.
func (e *Engine) Unlock(key []byte) (bool, error) {
	return e.UnlockContext(context.Background(), key)
}

func (e *Engine) keyCall(ctx context.Context, key []byte, call func(C.uint64_t, *C.otp_engine, *C.uint8_t, C.size_t, **C.char) C.otp_status) (bool, error) {
	timeout, err := callTimeout(ctx)
	if err != nil {
		return false, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return false, ErrClosed
	}
	var msg *C.char
	switch s := call(timeout, e.ptr, bytes(key), C.size_t(len(key)), &msg); s {
	case C.OTP_OK:
		return true, nil
	case C.OTP_NOT_FOUND:
		return false, nil
	default:
		return false, ended(ctx, statusError(s, msg))
	}
}

// The key calls, as keyCall takes them (a C function is seen only by the Go
// file whose preamble defines it).
func revokeCall(t C.uint64_t, e *C.otp_engine, k *C.uint8_t, n C.size_t, msg **C.char) C.otp_status {
	return C.go_revoke(t, e, k, n, msg)
}

func unlockCall(t C.uint64_t, e *C.otp_engine, k *C.uint8_t, n C.size_t, msg **C.char) C.otp_status {
	return C.go_unlock(t, e, k, n, msg)
}

// Stats returns the engine's counters (zero after Close).
func (e *Engine) Stats() Stats {
	s, _ := e.StatsContext(context.Background())
	return s
}

// StatsContext is Stats under ctx; with RedisURL it reads the store's counts,
// and fails with ErrBackendUnavailable (the counters are still returned) or
// ctx's error.
func (e *Engine) StatsContext(ctx context.Context) (Stats, error) {
	timeout, err := callTimeout(ctx)
	if err != nil {
		return Stats{}, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	var s C.otp_stats
	if e.ptr == nil {
		return Stats{}, ErrClosed
	}
	if C.go_stats(timeout, e.ptr, &s) != C.OTP_OK {
		return Stats{}, &Error{kind: KindInternal, msg: "otpengine: stats failed"}
	}
	return Stats{
		Issued: uint64(s.issued), Verified: uint64(s.verified), Mismatched: uint64(s.mismatched),
		Locked: uint64(s.locked), Expired: uint64(s.expired), RateLimited: uint64(s.rate_limited),
		Revoked: uint64(s.revoked), Live: uint64(s.live), Unavailable: uint64(s.unavailable),
		NotFound: uint64(s.not_found), CapacityExceeded: uint64(s.capacity_exceeded),
		Held: uint64(s.held), Replayed: uint64(s.replayed),
	}, nil
}

// Ping is a cheap health check for readiness probes: nil when the engine's
// store answers now (always, in memory; one PING of the server, or of every
// primary of a cluster), else ErrBackendUnavailable naming the server and why,
// or ErrClosed. It counts in no statistic.
func (e *Engine) Ping() error {
	return e.PingContext(context.Background())
}

// PingContext is Ping under ctx: its deadline bounds the wait.
func (e *Engine) PingContext(ctx context.Context) error {
	timeout, err := callTimeout(ctx)
	if err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	var msg *C.char
	if s := C.go_ping(timeout, e.ptr, &msg); s != C.OTP_OK {
		return ended(ctx, statusError(s, msg))
	}
	return nil
}

// Advance moves a manual clock forward; ErrInvalidArgument for a system clock.
func (e *Engine) Advance(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: cannot advance the clock by a negative %v", ErrInvalidArgument, d)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	if C.otp_clock_advance(e.ptr, C.uint64_t(ceilMillis(d))) != C.OTP_OK {
		return fmt.Errorf("%w: the clock can only be advanced on an engine built with ManualClock", ErrInvalidArgument)
	}
	return nil
}

// Close frees the engine. It is safe to call more than once, and from several goroutines.
func (e *Engine) Close() error {
	e.free()
	runtime.SetFinalizer(e, nil)
	return nil
}

func (e *Engine) free() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr == nil {
		return false
	}
	C.otp_engine_free(e.ptr)
	e.ptr = nil
	return true
}

func toC(cfg Config) (C.otp_config, error) {
	var c C.otp_config
	var err error // the first conversion that failed
	u32 := func(name string, v int) C.uint32_t {
		if v < 0 || uint64(v) > math.MaxUint32 {
			if err == nil {
				err = fmt.Errorf("%w: %s must be between 0 and %d, got %d", ErrInvalidArgument, name, uint32(math.MaxUint32), v)
			}
			return 0
		}
		return C.uint32_t(v)
	}
	msOf := func(name string, d time.Duration) C.uint64_t {
		if d < 0 {
			if err == nil {
				err = fmt.Errorf("%w: %s must not be negative, got %v", ErrInvalidArgument, name, d)
			}
			return 0
		}
		return C.uint64_t(ceilMillis(d))
	}
	c.code_length = u32("CodeLength", cfg.CodeLength)
	c.alphabet = u32("Alphabet", int(cfg.Alphabet))
	c.ttl_ms = msOf("TTL", cfg.TTL)
	c.max_attempts = u32("MaxAttempts", cfg.MaxAttempts)
	c.resend_cooldown_ms = msOf("ResendCooldown", cfg.ResendCooldown)
	c.max_issues_per_window = u32("MaxIssuesPerWindow", cfg.MaxIssuesPerWindow)
	c.issue_window_ms = msOf("IssueWindow", cfg.IssueWindow)
	c.max_failures_per_key = u32("MaxFailuresPerKey", cfg.MaxFailuresPerKey)
	c.lockout_ms = msOf("Lockout", cfg.Lockout)
	c.codes_per_key = u32("CodesPerKey", cfg.CodesPerKey)
	c.capacity = C.uint64_t(cfg.Capacity)
	c.shards = u32("Shards", cfg.Shards)
	c.redis_connect_timeout_ms = msOf("RedisConnectTimeout", cfg.RedisConnectTimeout)
	c.redis_response_timeout_ms = msOf("RedisResponseTimeout", cfg.RedisResponseTimeout)
	if cfg.ManualClock {
		c.manual_clock = 1
	}
	if cfg.EscalateLockouts {
		c.escalate_lockouts = 1
	}
	c.max_lockout_ms = msOf("MaxLockout", cfg.MaxLockout)
	scopeLimitsToC(&c, cfg.ScopeLimits, u32, msOf)
	return c, err
}

// statusError is a failure with its kind and message, and frees the message.
func statusError(s C.otp_status, msg *C.char) error {
	detail := "no detail"
	if msg != nil {
		detail = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	kind := KindInternal
	switch s {
	case C.OTP_CAPACITY_EXCEEDED:
		kind = KindCapacityExceeded
	case C.OTP_INVALID_ARGUMENT:
		kind = KindInvalidArgument
	case C.OTP_BACKEND_UNAVAILABLE:
		kind = KindBackendUnavailable
	}
	what := kind.String()
	if kind == KindInternal {
		what = C.GoString(C.otp_status_str(s))
	}
	return &Error{kind: kind, msg: fmt.Sprintf("otpengine: %s: %s", what, detail)}
}

// bytes gives C a pointer to b's bytes (a valid one even when b is empty).
func bytes(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return (*C.uint8_t)(unsafe.Pointer(&emptyByte[0]))
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// ceilMillis rounds a non-negative duration up to whole milliseconds, the engine's
// resolution, so that no positive duration becomes 0 (which means "off" or
// "default" in the C API).
func ceilMillis(d time.Duration) uint64 {
	return uint64((d + time.Millisecond - 1) / time.Millisecond)
}

func ms(v C.uint64_t) time.Duration {
	return time.Duration(v) * time.Millisecond
}
