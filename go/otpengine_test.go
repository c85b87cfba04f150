package otpengine

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func newEngine(t *testing.T, tune func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ManualClock = true
	if tune != nil {
		tune(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func noLimits(c *Config) {
	c.ResendCooldown = 0
	c.MaxIssuesPerWindow = 0
	c.MaxFailuresPerKey = 0
}

func issue(t *testing.T, e *Engine, key string) string {
	t.Helper()
	code, _, err := e.Issue([]byte(key), nil)
	if err != nil {
		t.Fatalf("Issue(%q): %v", key, err)
	}
	return code
}

func verify(t *testing.T, e *Engine, key, code string) Verdict {
	t.Helper()
	v, err := e.Verify([]byte(key), code, nil)
	if err != nil {
		t.Fatalf("Verify(%q): %v", key, err)
	}
	return v
}

func wrong(code string) string {
	b := []byte(code)
	for i := range b {
		if b[i] == '9' {
			b[i] = '0'
		} else {
			b[i]++
		}
	}
	return string(b)
}

func TestDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.CodeLength != 6 || c.Alphabet != Digits || c.TTL != 5*time.Minute || c.MaxAttempts != 5 ||
		c.ResendCooldown != 30*time.Second || c.MaxIssuesPerWindow != 5 || c.IssueWindow != 10*time.Minute ||
		c.MaxFailuresPerKey != 100 || c.Lockout != time.Hour || c.CodesPerKey != 1 ||
		c.Capacity != 10_000_000 || c.Shards != 0 || c.ManualClock ||
		c.RedisURL != "" || c.Secret != nil || c.RedisConnectTimeout != 0 || c.RedisResponseTimeout != 0 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestIssueVerifyOnce(t *testing.T) {
	e := newEngine(t, noLimits)
	code, expiresIn, err := e.Issue([]byte("alice"), nil)
	if err != nil || len(code) != 6 || expiresIn != 5*time.Minute {
		t.Fatalf("Issue = %q, %v, %v", code, expiresIn, err)
	}
	if v := verify(t, e, "alice", wrong(code)); v != (Verdict{Status: Mismatch, AttemptsLeft: 4}) {
		t.Fatalf("wrong code: %+v", v)
	}
	if v := verify(t, e, "alice", code[:3]+"-"+code[3:]); v.Status != Verified {
		t.Fatalf("right code: %+v", v)
	}
	if v := verify(t, e, "alice", code); v.Status != NotFound {
		t.Fatalf("replay: %+v", v)
	}
	if Verified.String() != "Verified" || NotFound.String() != "NotFound" || Status(9).String() != "Status(9)" ||
		Status(0).String() != "Status(0)" || (Verdict{}).Status == Verified {
		t.Fatal("Status names")
	}
}

func TestBurnAfterAttempts(t *testing.T) {
	e := newEngine(t, noLimits)
	code := issue(t, e, "alice")
	for left := 4; left >= 1; left-- {
		if v := verify(t, e, "alice", wrong(code)); v != (Verdict{Status: Mismatch, AttemptsLeft: left}) {
			t.Fatalf("attempt: %+v, want %d left", v, left)
		}
	}
	if v := verify(t, e, "alice", wrong(code)); v.Status != Locked {
		t.Fatalf("fifth wrong: %+v", v)
	}
	if v := verify(t, e, "alice", code); v.Status != Locked {
		t.Fatalf("burned code: %+v", v)
	}
}

func TestExpiryOnTheManualClock(t *testing.T) {
	e := newEngine(t, noLimits)
	code, _, err := e.IssueTTL([]byte("alice"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Advance(10*time.Second - time.Millisecond); err != nil {
		t.Fatal(err)
	}
	other := issue(t, e, "bob")
	if err := e.Advance(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, e, "alice", code); v.Status != Expired {
		t.Fatalf("at expiry: %+v", v)
	}
	if v := verify(t, e, "bob", other); v.Status != Verified {
		t.Fatalf("bob: %+v", v)
	}
	system, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer system.Close()
	if err := system.Advance(time.Second); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Advance on a system clock: %v", err)
	}
}

func TestContextBinding(t *testing.T) {
	e := newEngine(t, noLimits)
	transfer := []byte("EUR 250.00 to DE89 3704 0044 0532 0130 00")
	code, _, err := e.Issue([]byte("alice"), transfer)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.Verify([]byte("alice"), code, []byte("EUR 2500.00 to DE89 3704 0044 0532 0130 00"))
	if v.Status != Mismatch {
		t.Fatalf("other context: %+v", v)
	}
	if v, _ := e.Verify([]byte("alice"), code, transfer); v.Status != Verified {
		t.Fatalf("same context: %+v", v)
	}
}

func TestRateLimitedAndLockedErrors(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxFailuresPerKey = 2
		c.Lockout = time.Minute
	})
	code := issue(t, e, "alice")
	e.Advance(12345 * time.Millisecond)
	_, _, err := e.Issue([]byte("alice"), nil)
	var rateLimited *RateLimitedError
	if !errors.As(err, &rateLimited) || rateLimited.RetryAfter != 17655*time.Millisecond {
		t.Fatalf("cooldown: %v", err)
	}
	verify(t, e, "alice", wrong(code))
	if v := verify(t, e, "alice", wrong(code)); v.Status != Locked {
		t.Fatalf("budget spent: %+v", v)
	}
	e.Advance(time.Second)
	_, _, err = e.Issue([]byte("alice"), nil)
	var locked *LockedError
	if !errors.As(err, &locked) || locked.RetryAfter != 59*time.Second {
		t.Fatalf("locked out: %v", err)
	}
	if ok, err := e.Unlock([]byte("alice")); !ok || err != nil {
		t.Fatalf("Unlock should lift the lockout: %v %v", ok, err)
	}
	if ok, err := e.Unlock([]byte("alice")); ok || err != nil {
		t.Fatalf("Unlock should lift the lockout once: %v %v", ok, err)
	}
	e.Advance(30 * time.Second)
	issue(t, e, "alice")
}

// spendBudget spends key's budget of 2 on a fresh code and returns the
// lockout's wait, as the refused issue that follows reports it.
func spendBudget(t *testing.T, e *Engine, key string) time.Duration {
	t.Helper()
	code := issue(t, e, key)
	verify(t, e, key, wrong(code))
	if v := verify(t, e, key, wrong(code)); v.Status != Locked {
		t.Fatalf("budget spent: %+v", v)
	}
	_, _, err := e.Issue([]byte(key), nil)
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("locked out: %v", err)
	}
	return locked.RetryAfter
}

func TestPingInMemoryAndAfterClose(t *testing.T) {
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Ping(); err != nil {
		t.Fatalf("in memory: %v", err)
	}
	e.Close()
	if err := e.Ping(); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestEscalatingLockouts(t *testing.T) {
	tune := func(escalate bool) func(*Config) {
		return func(c *Config) {
			c.ResendCooldown = 0
			c.MaxIssuesPerWindow = 0
			c.MaxFailuresPerKey = 2
			c.Lockout = time.Minute
			c.MaxLockout = 4 * time.Minute
			c.EscalateLockouts = escalate
		}
	}
	if d := DefaultConfig(); !d.EscalateLockouts || d.MaxLockout != 30*24*time.Hour {
		t.Fatalf("defaults: %v %v", d.EscalateLockouts, d.MaxLockout)
	}
	e := newEngine(t, tune(true))
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
		if got := spendBudget(t, e, "alice"); got != want {
			t.Fatalf("lockout %d: %v, want %v", i+1, got, want)
		}
		e.Advance(want)
	}
	if ok, err := e.Unlock([]byte("alice")); !ok || err != nil {
		t.Fatalf("Unlock clears the strikes: %v %v", ok, err)
	}
	if got := spendBudget(t, e, "alice"); got != time.Minute {
		t.Fatalf("after Unlock: %v", got)
	}
	e = newEngine(t, tune(false))
	spendBudget(t, e, "bob")
	e.Advance(time.Minute)
	if got := spendBudget(t, e, "bob"); got != time.Minute {
		t.Fatalf("without escalation: %v", got)
	}
	_, err := New(func() Config { c := DefaultConfig(); c.MaxLockout = time.Minute; return c }())
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(),
		"max_lockout_ms must be between 3600000 and 31536000000, got 60000") {
		t.Fatalf("MaxLockout below Lockout: %v", err)
	}
}

func TestCapacityRevokeAndStats(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.Capacity = 2 })
	a := issue(t, e, "a")
	issue(t, e, "b")
	if _, _, err := e.Issue([]byte("c"), nil); !errors.Is(err, ErrCapacityExceeded) {
		t.Fatalf("full: %v", err)
	}
	for _, c := range []struct {
		key  string
		want bool
	}{{"b", true}, {"b", false}, {"nobody", false}} {
		if got, err := e.Revoke([]byte(c.key)); got != c.want || err != nil {
			t.Fatalf("Revoke(%q) = %v, %v; want %v", c.key, got, err, c.want)
		}
	}
	if _, err := e.Revoke(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Revoke(nil): %v", err)
	}
	verify(t, e, "a", a)
	s := e.Stats()
	// a (its cooldown) and b (revoked, its cooldown too) are held; c was refused.
	want := Stats{Issued: 2, Verified: 1, Revoked: 1, Live: 0, CapacityExceeded: 1, Held: 2}
	if s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
}

func TestBadArguments(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTL = 0
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "ttl_ms must be between 1000 and 86400000, got 0") {
		t.Fatalf("TTL 0: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Shards = 3
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "shards") {
		t.Fatalf("Shards 3: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Lockout = -time.Second
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "Lockout") {
		t.Fatalf("negative Lockout: %v", err)
	}
	e := newEngine(t, noLimits)
	if _, _, err := e.Issue(nil, nil); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "key must be between 1 and 1024 bytes long, got 0 bytes") {
		t.Fatalf("empty key: %v", err)
	}
	if _, _, err := e.Issue(make([]byte, 1025), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("long key: %v", err)
	}
	if _, err := e.Verify([]byte("a"), "123456", make([]byte, 1025)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("long context: %v", err)
	}
	if v, err := e.Verify([]byte("a"), "", nil); err != nil || v.Status != NotFound {
		t.Fatalf("empty code: %+v %v", v, err)
	}
	for _, ttl := range []time.Duration{500 * time.Millisecond, 500 * time.Microsecond, time.Nanosecond} {
		// Found in review: under 1 ms once truncated to 0, "the engine's ttl".
		if _, _, err := e.IssueTTL([]byte("a"), nil, ttl); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "ttl_ms") {
			t.Fatalf("ttl %v: %v", ttl, err)
		}
	}
	if e.Stats().Issued != 0 {
		t.Fatal("a refused call issued something")
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Issue([]byte("a"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Issue after Close: %v", err)
	}
	if _, err := e.Verify([]byte("a"), "123456", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Verify after Close: %v", err)
	}
	if _, err := e.Revoke([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Revoke after Close: %v", err)
	}
	if _, err := e.Unlock([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Unlock after Close: %v", err)
	}
	if e.Stats() != (Stats{}) {
		t.Fatal("Stats after Close")
	}
}

func TestAFinalizerFreesAnEngineNobodyClosed(t *testing.T) {
	before := finalized.Load()
	for i := 0; i < 8; i++ {
		if _, err := New(DefaultConfig()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for finalized.Load() == before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if finalized.Load() == before {
		t.Fatal("no engine was finalized")
	}
}

func TestGoroutinesVerifyingTheSameCodeGetOneSuccess(t *testing.T) {
	e := newEngine(t, noLimits)
	for round := 0; round < 200; round++ {
		key := []byte("user-" + string(rune('a'+round%26)) + string(rune('0'+round/26)))
		code, _, err := e.Issue(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]Status, 8)
		for g := range results {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				<-start
				v, err := e.Verify(key, code, nil)
				if err != nil {
					t.Error(err)
				}
				results[g] = v.Status
			}(g)
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, s := range results {
			if s == Verified {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d successes: %v", round, ok, results)
		}
	}
}

func TestGoroutinesHammeringOneEngineKeepCountsExact(t *testing.T) {
	e := newEngine(t, noLimits)
	var mu sync.Mutex
	issued, verified := uint64(0), uint64(0)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var myIssued, myVerified uint64
			for i := 0; i < 2000; i++ {
				key := []byte{byte('a' + (g*7+i)%16)}
				code, _, err := e.Issue(key, nil)
				if err != nil {
					t.Error(err)
					return
				}
				myIssued++
				if v, _ := e.Verify(key, code, nil); v.Status == Verified {
					myVerified++
				}
			}
			mu.Lock()
			issued += myIssued
			verified += myVerified
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	s := e.Stats()
	if s.Issued != issued || s.Verified != verified || issued != 16000 || verified == 0 {
		t.Fatalf("stats %+v vs issued %d verified %d", s, issued, verified)
	}
}

func TestSubMillisecondDurationsRoundUpNotToZero(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxIssuesPerWindow = 0
		c.ResendCooldown = 500 * time.Microsecond // 1 ms, not "off"
	})
	issue(t, e, "alice")
	var rateLimited *RateLimitedError
	if _, _, err := e.Issue([]byte("alice"), nil); !errors.As(err, &rateLimited) || rateLimited.RetryAfter != time.Millisecond {
		t.Fatalf("a 0.5 ms cooldown is a 1 ms cooldown: %v", err)
	}
	if err := e.Advance(time.Microsecond); err != nil {
		t.Fatal(err)
	}
	issue(t, e, "alice") // the microsecond moved the clock by its whole millisecond
}

func TestCloseWhileCallsAreInFlight(t *testing.T) {
	for round := 0; round < 50; round++ {
		e, err := New(DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				key := []byte{byte(g)}
				for i := 0; i < 200; i++ {
					if _, _, err := e.Issue(key, nil); err != nil && !errors.Is(err, ErrClosed) {
						var rl *RateLimitedError
						if !errors.As(err, &rl) {
							t.Error(err)
						}
					}
					if _, err := e.Verify(key, "123456", nil); err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					e.Stats()
				}
			}(g)
		}
		e.Close()
		e.Close()
		wg.Wait()
	}
}

func TestTheLibraryHasTheHeadersABIVersion(t *testing.T) {
	// init would have panicked otherwise; this names the number too.
	if got := abiVersionOfLibrary(); got != ABIVersion || ABIVersion < 1 {
		t.Fatalf("library ABI %d, header ABI %d", got, ABIVersion)
	}
}
