package otpengine

/*
#cgo noescape go_issue_many
#cgo nocallback go_issue_many
#cgo noescape go_verify_many
#cgo nocallback go_verify_many
#include <string.h>
#include "otpengine_go.h"

// The batch calls, with the call's message and every item's (errs: one
// string or NULL per item) copied in the same C call.
static otp_status go_issue_many(uint64_t timeout_ms, const otp_engine *e, const otp_batch_key *keys,
                                size_t n, const uint8_t *ctx, size_t ctx_len, char *codes,
                                size_t stride, otp_issue_answer *answers, char **errs, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_issue_many(e, keys, n, ctx, ctx_len, codes, stride, answers);
	*err = go_last_error();
	if (s == OTP_OK)
		for (size_t i = 0; i < n; i++) errs[i] = answers[i].status == OTP_OK ? NULL : go_batch_error(i);
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}

static otp_status go_verify_many(uint64_t timeout_ms, const otp_engine *e, const otp_verify_item *items,
                                 size_t n, otp_verdict *verdicts, char **errs, char **err) {
	if (timeout_ms) otp_set_call_timeout_ms(timeout_ms);
	otp_status s = otp_verify_many(e, items, n, verdicts);
	*err = go_last_error();
	if (s == OTP_OK)
		for (size_t i = 0; i < n; i++) errs[i] = go_batch_error(i);
	if (timeout_ms) otp_set_call_timeout_ms(0);
	return s;
}
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

// IssueAnswer is what IssueMany answers for one key: the code and how long it
// is valid, or the error Issue would have returned for that key.
type IssueAnswer struct {
	Code      string
	ExpiresIn time.Duration
	Err       error
}

// VerifyItem is one verify of a VerifyMany batch: Verify's arguments.
type VerifyItem struct {
	Key     []byte
	Code    string
	Context []byte // nil: none
}

// VerifyAnswer is what VerifyMany answers for one item: the Verdict Verify
// would have given, or its error (then a zero Verdict).
type VerifyAnswer struct {
	Verdict
	Err error
}

// codeStride is each code's room in a batch's buffer: the longest code and a NUL.
const codeStride = 16

// IssueMany issues a code for each of keys, all bound to data (nil: none), in
// order: each key's answer is what Issue would have answered for it in turn
// (a key given twice is issued twice, the second time inside its own
// cooldown), so a refusal never loses the codes around it. In memory the
// batch runs back to back; on a standalone Redis it is one round trip. The
// error is for the batch as a whole (a bad data, a closed engine), when
// nothing was issued.
func (e *Engine) IssueMany(keys [][]byte, data []byte) ([]IssueAnswer, error) {
	return e.IssueManyContext(background, keys, data)
}

// IssueManyContext is IssueMany under ctx (see IssueContext): a deadline
// bounds the whole batch, and a key that finds Redis unavailable past it
// answers that error wrapped with ctx's.
func (e *Engine) IssueManyContext(ctx context.Context, keys [][]byte, data []byte) ([]IssueAnswer, error) {
	timeout, err := callTimeout(ctx)
	if err != nil {
		return nil, err
	}
	cKeys, release := cBatchKeys(keys)
	defer release()
	n := len(keys)
	codes := make([]C.char, n*codeStride+1) // +1: never empty
	answers := make([]C.otp_issue_answer, n+1)
	errs := make([]*C.char, n+1)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return nil, ErrClosed
	}
	var msg *C.char
	s := C.go_issue_many(timeout, e.ptr, cKeys, C.size_t(n), bytes(data), C.size_t(len(data)),
		&codes[0], codeStride, &answers[0], &errs[0], &msg)
	if s != C.OTP_OK {
		return nil, ended(ctx, statusError(s, msg))
	}
	out := make([]IssueAnswer, n)
	for i := range out {
		a := answers[i]
		switch a.status {
		case C.OTP_OK:
			out[i] = IssueAnswer{Code: C.GoString(&codes[i*codeStride]), ExpiresIn: ms(a.expires_in_ms)}
		case C.OTP_RATE_LIMITED:
			C.free(unsafe.Pointer(errs[i]))
			out[i].Err = &RateLimitedError{RetryAfter: ms(a.retry_after_ms)}
		case C.OTP_LOCKED:
			C.free(unsafe.Pointer(errs[i]))
			out[i].Err = &LockedError{RetryAfter: ms(a.retry_after_ms)}
		default:
			out[i].Err = ended(ctx, statusError(C.otp_status(a.status), errs[i]))
		}
	}
	return out, nil
}

// VerifyMany verifies each of items in order: each item's answer is what
// Verify would have answered for it in turn. In memory the batch runs back to
// back; on a standalone Redis it is one round trip. The error is for the
// batch as a whole (a closed engine), when nothing was verified.
func (e *Engine) VerifyMany(items []VerifyItem) ([]VerifyAnswer, error) {
	return e.VerifyManyContext(background, items)
}

// VerifyManyContext is VerifyMany under ctx (see IssueManyContext).
func (e *Engine) VerifyManyContext(ctx context.Context, items []VerifyItem) ([]VerifyAnswer, error) {
	timeout, err := callTimeout(ctx)
	if err != nil {
		return nil, err
	}
	cItems, release := cVerifyItems(items)
	defer release()
	n := len(items)
	verdicts := make([]C.otp_verdict, n+1)
	errs := make([]*C.char, n+1)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return nil, ErrClosed
	}
	var msg *C.char
	if s := C.go_verify_many(timeout, e.ptr, cItems, C.size_t(n), &verdicts[0], &errs[0], &msg); s != C.OTP_OK {
		return nil, ended(ctx, statusError(s, msg))
	}
	out := make([]VerifyAnswer, n)
	for i := range out {
		v := verdicts[i]
		verdict, err := verdictOf(C.otp_status(v.status), v, errs[i]) // a verdict has no message
		out[i] = VerifyAnswer{Verdict: verdict, Err: ended(ctx, err)}
	}
	return out, nil
}

// cBatchKeys copies keys into one C allocation, the otp_batch_key array then
// the bytes (no Go pointer reaches C), and gives its release.
func cBatchKeys(keys [][]byte) (*C.otp_batch_key, func()) {
	if len(keys) == 0 {
		return nil, func() {}
	}
	size := 0
	for _, k := range keys {
		size += len(k)
	}
	block, b := newBlock[C.otp_batch_key](len(keys), size)
	entries := unsafe.Slice((*C.otp_batch_key)(block), len(keys))
	for i, k := range keys {
		entries[i].key, entries[i].key_len = put(&b, k)
	}
	return (*C.otp_batch_key)(block), func() { C.free(block) }
}

// cVerifyItems copies items into one C allocation as cBatchKeys does.
func cVerifyItems(items []VerifyItem) (*C.otp_verify_item, func()) {
	if len(items) == 0 {
		return nil, func() {}
	}
	size := 0
	for _, it := range items {
		size += len(it.Key) + len(it.Code) + len(it.Context)
	}
	block, b := newBlock[C.otp_verify_item](len(items), size)
	entries := unsafe.Slice((*C.otp_verify_item)(block), len(items))
	for i, it := range items {
		entries[i].key, entries[i].key_len = put(&b, it.Key)
		code, codeLen := put(&b, it.Code)
		entries[i].code, entries[i].code_len = (*C.char)(unsafe.Pointer(code)), codeLen
		entries[i].context, entries[i].context_len = put(&b, it.Context)
	}
	return (*C.otp_verify_item)(block), func() { C.free(block) }
}

// newBlock allocates in C an array of n Ts followed by size bytes (and one
// more, so that an empty part at the end still has a valid pointer), and
// gives the bytes' part.
func newBlock[T any](n, size int) (unsafe.Pointer, []byte) {
	var entry T
	head := n * int(unsafe.Sizeof(entry))
	block := C.malloc(C.size_t(head + size + 1))
	return block, unsafe.Slice((*byte)(block), head+size+1)[head:]
}

// put copies b to the front of *rest and moves *rest past it: a pointer that
// is never NULL (an empty part is the engine's to judge, not this package's).
func put[T ~[]byte | ~string](rest *[]byte, b T) (*C.uint8_t, C.size_t) {
	p := (*C.uint8_t)(unsafe.Pointer(&(*rest)[0]))
	n := copy(*rest, b)
	*rest = (*rest)[n:]
	return p, C.size_t(n)
}
