package otpengine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHOTPGivesTheRFC4226Vectors(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, code := range want {
		got, err := HOTP([]byte("12345678901234567890"), uint64(counter), 6, SHA1)
		if err != nil || got != code {
			t.Fatalf("counter %d: got %q, %v; want %q", counter, got, err, code)
		}
	}
}

func TestTOTPGivesTheRFC6238Vectors(t *testing.T) {
	seeds := map[Hash][]byte{
		SHA1:   []byte("12345678901234567890"),
		SHA256: []byte("12345678901234567890123456789012"),
		SHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	rows := []struct {
		at   int64
		want map[Hash]string
	}{
		{59, map[Hash]string{SHA1: "94287082", SHA256: "46119246", SHA512: "90693936"}},
		{1111111109, map[Hash]string{SHA1: "07081804", SHA256: "68084774", SHA512: "25091201"}},
		{20000000000, map[Hash]string{SHA1: "65353130", SHA256: "77737706", SHA512: "47863826"}},
	}
	for _, row := range rows {
		for alg, want := range row.want {
			p := DefaultTOTPParams()
			p.Digits, p.Algorithm = 8, alg
			got, err := TOTP(seeds[alg], time.Unix(row.at, 0), p)
			if err != nil || got != want {
				t.Fatalf("%v at %d: got %q, %v; want %q", alg, row.at, got, err, want)
			}
		}
	}
}

func TestTOTPArgumentsAndTheEnrolmentURI(t *testing.T) {
	p := DefaultTOTPParams()
	if p != (TOTPParams{Digits: 6, Period: 30 * time.Second, Algorithm: SHA1, SkewBack: 1, SkewAhead: 1}) {
		t.Fatalf("defaults: %+v", p)
	}
	secret := []byte("12345678901234567890")
	bad := p
	bad.Digits = 9
	if _, err := TOTP(secret, time.Time{}, bad); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "digits must be between 6 and 8, got 9") {
		t.Fatalf("digits 9: %v", err)
	}
	bad = p
	bad.Period = 1500 * time.Millisecond
	if _, err := TOTP(secret, time.Time{}, bad); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "Period must be whole seconds") {
		t.Fatalf("period 1.5s: %v", err)
	}
	if _, err := HOTP(secret[:10], 0, 6, SHA1); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "secret must be between 16 and 64 bytes long, got 10 bytes") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := HOTP(secret, 0, 6, Hash(7)); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "algorithm must be one of") {
		t.Fatalf("hash 7: %v", err)
	}
	now, err := TOTP(secret, time.Time{}, p)
	if err != nil || len(now) != 6 {
		t.Fatalf("now: %q, %v", now, err)
	}
	uri, err := TOTPURI(secret, "Acme Bank", "alice@example.com", p)
	want := "otpauth://totp/Acme%20Bank:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Bank&algorithm=SHA1&digits=6&period=30"
	if err != nil || uri != want {
		t.Fatalf("uri: %q, %v", uri, err)
	}
	// Longer than the first buffer: grown to what the C call reports.
	long := strings.Repeat("a", 255)
	uri, err = TOTPURI(secret, long, long, p)
	if err != nil || !strings.Contains(uri, long+":"+long) {
		t.Fatalf("long uri: %v", err)
	}
	if _, err := TOTPURI(secret, "", "alice", p); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "issuer must be between 1 and 255 bytes long") {
		t.Fatalf("empty issuer: %v", err)
	}
	svg, err := QRSVG(want)
	if err != nil || !strings.HasPrefix(svg, "<?xml") || !strings.Contains(svg, "<svg") || len(svg) <= 4096 {
		t.Fatalf("QR code (larger than the first buffer): %d bytes, %v", len(svg), err)
	}
	if _, err := QRSVG(strings.Repeat("a", 2332)); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "text must be at most 2331 bytes long, got 2332 bytes") {
		t.Fatalf("too long for a QR code: %v", err)
	}
}

func TestVerifyTOTPOnceThenReplayedThenTheBudget(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MaxFailuresPerKey = 2
		c.Lockout = 10 * time.Minute
	})
	secret := []byte("12345678901234567890")
	p := DefaultTOTPParams()
	t0 := time.Unix(1_700_000_000, 0)
	code, err := TOTP(secret, t0, p)
	if err != nil {
		t.Fatal(err)
	}
	check := func(code string, want Verdict) {
		t.Helper()
		got, err := e.VerifyTOTP([]byte("alice"), secret, code, p, t0)
		if err != nil || got != want {
			t.Fatalf("%q: got %+v, %v; want %+v", code, got, err, want)
		}
	}
	check(code, Verdict{Status: Verified})
	check(code, Verdict{Status: Replayed})
	check("000000", Verdict{Status: Mismatch, AttemptsLeft: 1})
	check("000000", Verdict{Status: Locked, RetryAfter: 10 * time.Minute})
	if err := e.Advance(time.Minute); err != nil {
		t.Fatal(err)
	}
	check(code, Verdict{Status: Locked, RetryAfter: 9 * time.Minute})
	if ok, err := e.UnlockTOTP([]byte("alice")); !ok || err != nil {
		t.Fatalf("UnlockTOTP: %v, %v", ok, err)
	}
	check(code, Verdict{Status: Replayed})
	// The skew edges: one step each way by default, none with SkewBack 0.
	near, _ := TOTP(secret, t0.Add(-30*time.Second), p)
	far, _ := TOTP(secret, t0.Add(-60*time.Second), p)
	if v, _ := e.VerifyTOTP([]byte("k1"), secret, near, p, t0); v.Status != Verified {
		t.Fatalf("one step back: %+v", v)
	}
	if v, _ := e.VerifyTOTP([]byte("k2"), secret, far, p, t0); v.Status != Mismatch {
		t.Fatalf("two steps back: %+v", v)
	}
	strict := p
	strict.SkewBack = 0
	if v, _ := e.VerifyTOTP([]byte("k3"), secret, near, strict, t0); v.Status != Mismatch {
		t.Fatalf("no skew back: %+v", v)
	}
	if Replayed.String() != "Replayed" {
		t.Fatalf("name: %v", Replayed)
	}
	// Random-code state is apart: alice's issue and verify are untouched.
	issued, _, err := e.Issue([]byte("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Verify([]byte("alice"), issued, nil); err != nil || v.Status != Verified {
		t.Fatalf("random code: %+v, %v", v, err)
	}
	open := newEngine(t, func(c *Config) { c.MaxFailuresPerKey = 0 })
	if _, err := open.VerifyTOTP([]byte("bob"), secret, code, p, t0); !errors.Is(err, ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "max_failures_per_key must be at least 1 for verify_totp") {
		t.Fatalf("no budget: %v", err)
	}
}
