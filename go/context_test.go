package otpengine

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestADoneContextReturnsItsErrorWithoutCallingIn(t *testing.T) {
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := e.IssueContext(ctx, []byte("alice"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("IssueContext: %v", err)
	}
	if _, err := e.VerifyContext(ctx, []byte("alice"), "123456", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyContext: %v", err)
	}
	if _, err := e.RevokeContext(ctx, []byte("alice")); !errors.Is(err, context.Canceled) {
		t.Fatalf("RevokeContext: %v", err)
	}
	if err := e.PingContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("PingContext: %v", err)
	}
	past, stop := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer stop()
	if _, err := e.UnlockContext(past, []byte("alice")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("UnlockContext: %v", err)
	}
	if s := e.Stats(); s.Issued != 0 || s.NotFound != 0 {
		t.Fatalf("a done context called in: %+v", s)
	}
	// A live context calls through.
	code, _, err := e.IssueContext(context.Background(), []byte("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.VerifyContext(context.Background(), []byte("alice"), code, nil); err != nil || v.Status != Verified {
		t.Fatalf("VerifyContext: %+v %v", v, err)
	}
}

// With Redis paused for 800 ms, a verify under a 100 ms deadline ends after
// about 100 ms, not the engine's 2 s response timeout: the deadline reached
// the engine.
func TestADeadlineBoundsACallOnAPausedRedis(t *testing.T) {
	url := redisEnv(t, "OTPENGINE_REDIS_URL")
	cfg := DefaultConfig()
	cfg.RedisURL = url
	cfg.Secret = testSecret
	cfg.RedisResponseTimeout = 2 * time.Second
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	key := uniqueKey(t)
	code, _, err := e.Issue(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("redis-cli", "-u", url, "CLIENT", "PAUSE", "800", "ALL").CombinedOutput(); err != nil {
		t.Fatalf("redis-cli: %v %s", err, out)
	}
	// Whatever happens below, the next tests find the server serving.
	defer exec.Command("redis-cli", "-u", url, "CLIENT", "UNPAUSE").Run()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	started := time.Now()
	_, err = e.VerifyContext(ctx, key, code, nil)
	took := time.Since(started)
	if !errors.Is(err, ErrBackendUnavailable) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "did not answer within") {
		t.Fatalf("VerifyContext under a paused Redis: %v", err)
	}
	if took > 600*time.Millisecond {
		t.Fatalf("the deadline did not bound the call: %v", took)
	}
	// The next call on this thread is unbounded again: it waits the pause out.
	if _, err := e.Verify(key, code, nil); err != nil {
		t.Fatalf("Verify after the pause: %v", err)
	}

	// A batch under a deadline is bounded the same way: each key answers the
	// outage, wrapped with the deadline's error.
	if out, err := exec.Command("redis-cli", "-u", url, "CLIENT", "PAUSE", "800", "ALL").CombinedOutput(); err != nil {
		t.Fatalf("redis-cli: %v %s", err, out)
	}
	batchCtx, cancelBatch := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelBatch()
	started = time.Now()
	answers, err := e.IssueManyContext(batchCtx, [][]byte{key, append(key, 'b')}, nil)
	if err != nil || len(answers) != 2 {
		t.Fatalf("IssueManyContext under a paused Redis: %v %v", answers, err)
	}
	for _, a := range answers {
		if !errors.Is(a.Err, ErrBackendUnavailable) || !errors.Is(a.Err, context.DeadlineExceeded) {
			t.Fatalf("IssueManyContext under a paused Redis: %+v", a)
		}
	}
	if took := time.Since(started); took > 600*time.Millisecond {
		t.Fatalf("the deadline did not bound the batch: %v", took)
	}
}
