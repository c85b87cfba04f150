package otpengine

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ../tests/conformance.txt: each bad configuration is refused with
// ErrInvalidArgument naming the field as the C API spells it (Go's errors
// name C fields: TTL is ttl_ms). The C and Python suites read the same file.
func TestEveryBadConfigurationNamesItsField(t *testing.T) {
	text, err := os.ReadFile("../tests/conformance.txt")
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		cols := strings.Split(line, "|")
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		name, field := cols[0], cols[3]
		cfg := DefaultConfig()
		for _, kv := range strings.Split(cols[1], ",") {
			key, value, _ := strings.Cut(kv, "=")
			n, _ := strconv.Atoi(value)
			ms := time.Duration(n) * time.Millisecond
			switch key {
			case "ttl_ms":
				cfg.TTL = ms
			case "code_length":
				cfg.CodeLength = n
			case "max_attempts":
				cfg.MaxAttempts = n
			case "shards":
				cfg.Shards = n
			case "lockout_ms":
				cfg.Lockout = ms
			case "max_lockout_ms":
				cfg.MaxLockout = ms
			case "redis_response_timeout_ms":
				cfg.RedisResponseTimeout = ms
			case "scope_name":
				cfg.ScopeLimits = append(cfg.ScopeLimits, ScopeLimit{Name: value})
			case "scope_max_issues":
				cfg.ScopeLimits[0].MaxIssues = n
			case "scope_issue_window_ms":
				cfg.ScopeLimits[0].IssueWindow = ms
			case "redis_url":
				cfg.RedisURL = value
			case "secret":
				cfg.Secret = []byte(value)
			default:
				t.Fatalf("%s: a setting this test does not know: %s", name, key)
			}
		}
		_, err := New(cfg)
		if KindOf(err) != KindInvalidArgument || !strings.Contains(err.Error(), ": "+field+" must") {
			t.Errorf("%s: want an error naming %s, got %v", name, field, err)
		}
		cases++
	}
	if cases < 10 {
		t.Fatalf("read %d cases", cases)
	}
}
