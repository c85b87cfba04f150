//go:build cgo

package otpengine

import "errors"

// ErrorKind says what kind of refusal an error is, apart from the verdict
// Status (which has no value for a rate limit, a full engine or an outage).
// Every error this package returns has one; KindOf reads it.
type ErrorKind int

const (
	// KindNone: not an otpengine error (KindOf of nil, or of another error).
	KindNone ErrorKind = iota
	// KindRateLimited: *RateLimitedError.
	KindRateLimited
	// KindLocked: *LockedError.
	KindLocked
	// KindCapacityExceeded: ErrCapacityExceeded.
	KindCapacityExceeded
	// KindInvalidArgument: ErrInvalidArgument.
	KindInvalidArgument
	// KindBackendUnavailable: ErrBackendUnavailable.
	KindBackendUnavailable
	// KindClosed: ErrClosed.
	KindClosed
	// KindInternal: a bug in the engine (a caught panic); the engine stays usable.
	KindInternal
)

var kindNames = [...]string{"none", "rate limited", "locked", "capacity exceeded", "invalid argument",
	"backend unavailable", "closed", "internal error"}

func (k ErrorKind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "unknown"
	}
	return kindNames[k]
}

// Error is every failure but a rate limit or a lockout: its Kind, and the
// engine's message naming what was wrong. errors.Is matches it against the
// sentinel of its kind (ErrInvalidArgument, ErrBackendUnavailable, ...).
type Error struct {
	kind ErrorKind
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Kind says what kind of failure it is.
func (e *Error) Kind() ErrorKind { return e.kind }

// Is matches the sentinel of the error's kind.
func (e *Error) Is(target error) bool {
	switch e.kind {
	case KindCapacityExceeded:
		return target == ErrCapacityExceeded
	case KindInvalidArgument:
		return target == ErrInvalidArgument
	case KindBackendUnavailable:
		return target == ErrBackendUnavailable
	case KindClosed:
		return target == ErrClosed
	}
	return false
}

// Kind is KindRateLimited.
func (e *RateLimitedError) Kind() ErrorKind { return KindRateLimited }

// Kind is KindLocked.
func (e *LockedError) Kind() ErrorKind { return KindLocked }

// KindOf gives the kind of an error this package returned (wrapped or not),
// KindNone for nil or any other error.
func KindOf(err error) ErrorKind {
	var kinded interface{ Kind() ErrorKind }
	if errors.As(err, &kinded) {
		return kinded.Kind()
	}
	for kind, sentinel := range map[ErrorKind]error{
		KindCapacityExceeded:   ErrCapacityExceeded,
		KindInvalidArgument:    ErrInvalidArgument,
		KindBackendUnavailable: ErrBackendUnavailable,
		KindClosed:             ErrClosed,
	} {
		if errors.Is(err, sentinel) {
			return kind
		}
	}
	return KindNone
}
