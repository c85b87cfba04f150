package otpengine

// #include <stdint.h>
import "C"

import (
	"context"
	"fmt"
	"time"
)

// The …Context forms: every call that can wait on Redis takes a ctx. A ctx
// already done returns its error without calling in; a deadline bounds the
// call: the time left becomes this thread's call timeout in the engine
// (otp_set_call_timeout_ms, set and lifted inside the same cgo call), which
// ends a wait past it with ErrBackendUnavailable, then wrapped with ctx's
// error. A cgo call cannot be abandoned half-way (an abandoned verify might
// still consume the code), so the bound has to reach the engine.

// background is the context of the calls without one.
var background = context.Background()

// callTimeout is the call timeout for a call under ctx: 0 (the engine's
// response timeout) without a deadline, else the time left rounded up to a
// millisecond; or ctx's error when it is already done.
func callTimeout(ctx context.Context) (C.uint64_t, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	left := time.Until(deadline)
	if left <= 0 {
		return 0, context.DeadlineExceeded
	}
	return C.uint64_t(ceilMillis(left)), nil
}

// ended adds ctx's error to a call's, when ctx ended while the call ran (the
// engine's timeout was then most likely the deadline's).
func ended(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	cause := ctx.Err()
	if deadline, ok := ctx.Deadline(); cause == nil && ok && !time.Now().Before(deadline) {
		// Past the deadline, though the context's timer may not have fired yet.
		cause = context.DeadlineExceeded
	}
	if cause != nil {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// IssueContext is Issue under ctx.
func (e *Engine) IssueContext(ctx context.Context, key, data []byte) (string, time.Duration, error) {
	return e.issueIn(ctx, key, data, 0, nil)
}

// IssueScopedContext is IssueScoped under ctx.
func (e *Engine) IssueScopedContext(ctx context.Context, key, data []byte, ttl time.Duration, scopes ...Scope) (string, time.Duration, error) {
	if ttl < 0 {
		return "", 0, fmt.Errorf("%w: ttl must not be negative (0: the engine's), got %v", ErrInvalidArgument, ttl)
	}
	return e.issueIn(ctx, key, data, ceilMillis(ttl), scopes)
}

// VerifyContext is Verify under ctx.
func (e *Engine) VerifyContext(ctx context.Context, key []byte, code string, data []byte) (Verdict, error) {
	return e.verifyIn(ctx, key, code, data, nil)
}

// VerifyScopedContext is VerifyScoped under ctx.
func (e *Engine) VerifyScopedContext(ctx context.Context, key []byte, code string, data []byte, scopes ...Scope) (Verdict, error) {
	return e.verifyIn(ctx, key, code, data, scopes)
}

// VerifyTOTPContext is VerifyTOTP under ctx.
func (e *Engine) VerifyTOTPContext(ctx context.Context, key, secret []byte, code string, p TOTPParams, at time.Time) (Verdict, error) {
	return e.VerifyTOTPScopedContext(ctx, key, secret, code, p, at)
}

// RevokeContext is Revoke under ctx.
func (e *Engine) RevokeContext(ctx context.Context, key []byte) (bool, error) {
	return e.keyCall(ctx, key, revokeCall)
}

// UnlockContext is Unlock under ctx.
func (e *Engine) UnlockContext(ctx context.Context, key []byte) (bool, error) {
	return e.keyCall(ctx, key, unlockCall)
}

// UnlockTOTPContext is UnlockTOTP under ctx.
func (e *Engine) UnlockTOTPContext(ctx context.Context, key []byte) (bool, error) {
	return e.keyCall(ctx, key, unlockTOTPCall)
}
