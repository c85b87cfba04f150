package otpengine

import (
	"encoding/binary"
	"testing"
)

// The same workload as `cargo run --release --example quickbench` and
// benches/c/issue_verify.c: 1,000 live 8-byte keys, limits off, issue then verify.
// Run with `go test -run '^$' -bench . -count 5`.
func benchKeys() [][]byte {
	keys := make([][]byte, 1000)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range keys {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		keys[i] = binary.LittleEndian.AppendUint64(nil, x)
	}
	return keys
}

func benchEngine(b *testing.B) *Engine {
	cfg := DefaultConfig()
	cfg.ResendCooldown, cfg.MaxIssuesPerWindow, cfg.MaxFailuresPerKey = 0, 0, 0
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func BenchmarkIssueVerify(b *testing.B) {
	e, keys := benchEngine(b), benchKeys()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := keys[i%len(keys)]
		code, _, err := e.Issue(key, nil)
		if err != nil {
			b.Fatal(err)
		}
		if v, _ := e.Verify(key, code, nil); v.Status != Verified {
			b.Fatal(v)
		}
	}
}

// BenchmarkIssueVerifyMany: the same pairs in batches of 100 keys (IssueMany
// then VerifyMany), two cgo calls per 100 pairs; ns/op is per pair.
func BenchmarkIssueVerifyMany(b *testing.B) {
	e, keys := benchEngine(b), benchKeys()
	const batch = 100
	items := make([]VerifyItem, batch)
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		start := done % len(keys)
		part := keys[start : start+batch]
		answers, err := e.IssueMany(part, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i, a := range answers {
			if a.Err != nil {
				b.Fatal(a.Err)
			}
			items[i] = VerifyItem{Key: part[i], Code: a.Code}
		}
		checked, err := e.VerifyMany(items)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range checked {
			if c.Status != Verified {
				b.Fatal(c)
			}
		}
	}
}
