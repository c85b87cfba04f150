package otpengine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func scopedEngine(t *testing.T) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ManualClock = true
	cfg.ResendCooldown = 0
	cfg.MaxIssuesPerWindow = 0
	cfg.ScopeLimits = []ScopeLimit{{Name: "ip", MaxIssues: 2, IssueWindow: time.Hour, MaxFailures: 2, FailureWindow: time.Hour}}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestScopedIssuesAreLimitedPerScopeValue(t *testing.T) {
	e := scopedEngine(t)
	ip, err := IPScope("203.0.113.7")
	if err != nil || ip != "203.0.113.7/32" {
		t.Fatalf("IPScope: %q %v", ip, err)
	}
	scope := Scope{Name: "ip", Value: []byte(ip)}
	for _, key := range []string{"a", "b"} {
		if _, _, err := e.IssueScoped([]byte(key), nil, 0, scope); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = e.IssueScoped([]byte("c"), nil, 0, scope)
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.Scope != "ip" || rl.RetryAfter != time.Hour {
		t.Fatalf("third issue from one address: %v", err)
	}
	if _, _, err := e.IssueScoped([]byte("c"), nil, 0, Scope{Name: "ip", Value: []byte("198.51.100.1/32")}); err != nil {
		t.Fatalf("another address: %v", err)
	}
	text, err := e.Prometheus()
	if err != nil || !strings.Contains(text, "otpengine_rate_limited_total{scope=\"ip\"} 1\n") ||
		!strings.Contains(text, "otpengine_rate_limited_total{scope=\"key\"} 0\n") {
		t.Fatalf("Prometheus: %v\n%s", err, text)
	}
	_, _, err = e.IssueScoped([]byte("d"), nil, 0, Scope{Name: "tenant", Value: []byte("acme")})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), `scopes must be the name of a configured scope limit, got "tenant"`) {
		t.Fatalf("unknown scope: %v", err)
	}
	if _, err := IPScope("nope"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad address: %v", err)
	}
	v6, _ := IPScope("2001:db8:1:2:3:4:5:6")
	if v6 != "2001:db8:1:2::/64" {
		t.Fatalf("IPv6 /64: %q", v6)
	}
}

func TestAScopesFailureBudgetLocksVerifiesWithoutLooking(t *testing.T) {
	e := scopedEngine(t)
	scope := Scope{Name: "ip", Value: []byte("office")}
	codes := map[string]string{}
	for _, key := range []string{"x", "y", "z"} {
		code, _, err := e.Issue([]byte(key), nil)
		if err != nil {
			t.Fatal(err)
		}
		codes[key] = code
	}
	for _, key := range []string{"x", "y"} {
		wrong := "000000"
		if codes[key] == wrong {
			wrong = "111111"
		}
		v, err := e.VerifyScoped([]byte(key), wrong, nil, scope)
		if err != nil || v.Status != Mismatch {
			t.Fatalf("%s: %+v %v", key, v, err)
		}
	}
	v, err := e.VerifyScoped([]byte("z"), codes["z"], nil, scope)
	if err != nil || v.Status != Locked || v.RetryAfter != time.Hour {
		t.Fatalf("the right code from a locked address: %+v %v", v, err)
	}
	if ok, err := e.UnlockScope("ip", []byte("office")); !ok || err != nil {
		t.Fatalf("UnlockScope: %v %v", ok, err)
	}
	if v, err := e.VerifyScoped([]byte("z"), codes["z"], nil, scope); err != nil || v.Status != Verified {
		t.Fatalf("after the unlock: %+v %v", v, err)
	}
}

func TestBadScopeLimitsAreNamedByTheEngine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ScopeLimits = []ScopeLimit{{Name: strings.Repeat("x", 40), MaxIssues: 1, IssueWindow: time.Hour}}
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "name must end with a NUL") {
		t.Fatalf("a long name: %v", err)
	}
	cfg.ScopeLimits = []ScopeLimit{{Name: "ip", MaxIssues: 1}}
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "scope_limits[].issue_window_ms must be between 1000 and 86400000, got 0") {
		t.Fatalf("no window: %v", err)
	}
	cfg.ScopeLimits = make([]ScopeLimit, 9)
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "scope_limit_count must be between 0 and 8, got 9") {
		t.Fatalf("nine limits: %v", err)
	}
}

func TestEveryErrorHasAKind(t *testing.T) {
	e := scopedEngine(t)
	_, _, err := e.IssueScoped([]byte("k"), nil, 0, Scope{Name: "nope"})
	var typed *Error
	if KindOf(err) != KindInvalidArgument || !errors.As(err, &typed) || typed.Kind() != KindInvalidArgument || !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("an unknown scope: %v (%v)", err, KindOf(err))
	}
	if _, _, err := e.IssueTTL([]byte("k"), nil, -time.Second); KindOf(err) != KindInvalidArgument {
		t.Fatalf("a negative ttl: %v", KindOf(err))
	}
	for _, key := range []string{"a", "b", "c"} {
		_, _, err = e.IssueScoped([]byte(key), nil, 0, Scope{Name: "ip", Value: []byte("x")})
	}
	if KindOf(err) != KindRateLimited || KindOf(err).String() != "rate limited" {
		t.Fatalf("a refused issue: %v", KindOf(err))
	}
	if _, _, err := e.IssueScoped([]byte("k"), nil, -time.Second); KindOf(err) != KindInvalidArgument {
		t.Fatalf("a negative ttl: %v", err)
	}
	if _, _, err := e.IssueScoped([]byte("k"), nil, 0, Scope{Name: "ip\x00x"}); KindOf(err) != KindInvalidArgument {
		t.Fatalf("a NUL in a scope name: %v", err)
	}
	if KindOf(nil) != KindNone || KindOf(errors.New("other")) != KindNone {
		t.Fatal("KindOf of foreign errors")
	}
	e.Close()
	if _, _, err := e.Issue([]byte("k"), nil); KindOf(err) != KindClosed {
		t.Fatalf("a closed engine: %v", KindOf(err))
	}
}
