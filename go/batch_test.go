package otpengine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// testBatches: a batch answers each key as the single call would, in order; a
// bad key fails alone with the engine's message; another instance (or the
// same engine) verifies the batch's codes in one batch.
func testBatches(t *testing.T, issuer, verifier *Engine, alice, bob []byte) {
	t.Helper()
	answers, err := issuer.IssueMany([][]byte{alice, {}, bob}, []byte("EUR 10"))
	if err != nil || len(answers) != 3 {
		t.Fatalf("IssueMany: %v %v", answers, err)
	}
	if answers[0].Err != nil || len(answers[0].Code) != 6 || answers[0].ExpiresIn != 5*time.Minute {
		t.Fatalf("alice: %+v", answers[0])
	}
	if !errors.Is(answers[1].Err, ErrInvalidArgument) || KindOf(answers[1].Err) != KindInvalidArgument ||
		!strings.Contains(answers[1].Err.Error(), "key must be") || answers[1].Code != "" {
		t.Fatalf("an empty key: %+v", answers[1])
	}
	if answers[2].Err != nil || len(answers[2].Code) != 6 {
		t.Fatalf("bob: %+v", answers[2])
	}
	verdicts, err := verifier.VerifyMany([]VerifyItem{
		{Key: alice, Code: answers[0].Code, Context: []byte("EUR 10")},
		{Key: bob, Code: wrong(answers[2].Code), Context: []byte("EUR 10")},
		{Key: bob, Code: answers[2].Code}, // no context: a mismatch
		{Key: alice, Code: answers[0].Code, Context: []byte("EUR 10")},
		{Key: nil, Code: "123456"},
	})
	if err != nil || len(verdicts) != 5 {
		t.Fatalf("VerifyMany: %v %v", verdicts, err)
	}
	want := []Verdict{{Status: Verified}, {Status: Mismatch, AttemptsLeft: 4}, {Status: Mismatch, AttemptsLeft: 3}, {Status: NotFound}}
	for i, w := range want {
		if verdicts[i].Err != nil || verdicts[i].Verdict != w {
			t.Fatalf("item %d: %+v, want %+v", i, verdicts[i], w)
		}
	}
	if !errors.Is(verdicts[4].Err, ErrInvalidArgument) || verdicts[4].Status != 0 {
		t.Fatalf("a nil key: %+v", verdicts[4])
	}
}

func TestBatchesAnswerAsTheSingleCalls(t *testing.T) {
	e := newEngine(t, noLimits)
	testBatches(t, e, e, []byte("alice"), []byte("bob"))
	// The key's own limits hold inside a batch: the second issue of a key is
	// in its cooldown.
	limited := newEngine(t, nil)
	answers, err := limited.IssueMany([][]byte{[]byte("carol"), []byte("carol")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rl *RateLimitedError
	if answers[0].Err != nil || !errors.As(answers[1].Err, &rl) || rl.RetryAfter != 30*time.Second {
		t.Fatalf("a key twice: %+v", answers)
	}
	s := limited.Stats()
	if s.Issued != 1 || s.RateLimited != 1 {
		t.Fatalf("stats: %+v", s)
	}
	// Empty batches run and answer nothing.
	if a, err := e.IssueMany(nil, nil); err != nil || len(a) != 0 {
		t.Fatalf("IssueMany(nil): %v %v", a, err)
	}
	if v, err := e.VerifyMany(nil); err != nil || len(v) != 0 {
		t.Fatalf("VerifyMany(nil): %v %v", v, err)
	}
}

func TestABatchWithABadContextOrADoneContextIssuesNothing(t *testing.T) {
	e := newEngine(t, nil)
	long := make([]byte, 1025)
	if a, err := e.IssueMany([][]byte{[]byte("alice")}, long); !errors.Is(err, ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "context") || a != nil {
		t.Fatalf("a long context: %v %v", a, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.IssueManyContext(ctx, [][]byte{[]byte("alice")}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("IssueManyContext: %v", err)
	}
	if _, err := e.VerifyManyContext(ctx, []VerifyItem{{Key: []byte("alice"), Code: "123456"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyManyContext: %v", err)
	}
	if s := e.Stats(); s.Issued != 0 || s.NotFound != 0 {
		t.Fatalf("a refused batch called in: %+v", s)
	}
	e.Close()
	if _, err := e.IssueMany([][]byte{[]byte("alice")}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestRedisBatchesAcrossInstances(t *testing.T) {
	url := redisEnv(t, "OTPENGINE_REDIS_URL")
	testBatches(t, redisEngine(t, url), redisEngine(t, url), uniqueKey(t), append(uniqueKey(t), 'b'))
}

func TestRedisClusterBatchesAcrossInstances(t *testing.T) {
	url := redisEnv(t, "OTPENGINE_REDIS_CLUSTER")
	testBatches(t, redisEngine(t, url), redisEngine(t, url), uniqueKey(t), append(uniqueKey(t), 'b'))
}
