package otpengine

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Redis calls while signals arrive: the Go runtime's own (a GC signals its
// threads) and SIGCHLD from child processes ending, as the outage tests' servers
// do. A read with a receive timeout is never restarted after a signal, so
// without the C library's signal shield a call could fail with "Interrupted
// system call" (seen in CI). None may.
func TestRedisCallsSurviveRuntimeSignals(t *testing.T) {
	url := redisEnv(t, "OTPENGINE_REDIS_CLUSTER")
	e := redisEngine(t, url)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		for !stop.Load() {
			runtime.GC()
			_ = exec.Command("true").Run()
		}
		close(done)
	}()
	defer func() { stop.Store(true); <-done }()
	// Without the shield, the first failure came within 2,000 calls in every run.
	for i := 0; i < 3000; i++ {
		key := []byte(fmt.Sprintf("go-signals-%d-%d", time.Now().UnixNano(), i))
		code, _, err := e.Issue(key, nil)
		if err != nil {
			t.Fatalf("issue %d: %v", i, err)
		}
		if v, err := e.Verify(key, code, nil); err != nil || v.Status != Verified {
			t.Fatalf("verify %d: %+v, %v", i, v, err)
		}
	}
}
