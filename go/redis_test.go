package otpengine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The Redis engine against the real servers of scripts/with-redis.sh
// (OTPENGINE_REDIS_URL, OTPENGINE_REDIS_CLUSTER, OTPENGINE_REDIS_SERVER); skipped
// with a loud message without them, failed under OTPENGINE_REQUIRE_REDIS=1.

var testSecret = []byte("otpengine Go test secret, 32 b..")

func redisEnv(t *testing.T, name string) string {
	t.Helper()
	value := os.Getenv(name)
	if value != "" {
		return value
	}
	message := fmt.Sprintf("%s is not set: the Go tests against Redis are SKIPPED; run them with scripts/with-redis.sh (make test does)", name)
	if os.Getenv("OTPENGINE_REQUIRE_REDIS") == "1" {
		t.Fatalf("OTPENGINE_REQUIRE_REDIS=1 but %s", message)
	}
	fmt.Fprintf(os.Stderr, "\n!!!!!!!!!!\n%s\n!!!!!!!!!!\n", message)
	t.Skip(message)
	return ""
}

func redisEngine(t *testing.T, url string) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ResendCooldown = 0
	cfg.MaxIssuesPerWindow = 0
	cfg.RedisURL = url
	cfg.Secret = testSecret
	cfg.RedisConnectTimeout = 300 * time.Millisecond
	cfg.RedisResponseTimeout = 300 * time.Millisecond
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", url, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func uniqueKey(t *testing.T) []byte {
	return []byte(fmt.Sprintf("go-%s-%d", t.Name(), time.Now().UnixNano()))
}

func testTwoInstances(t *testing.T, url string) {
	a, b := redisEngine(t, url), redisEngine(t, url)
	key := uniqueKey(t)
	code, _, err := a.Issue(key, []byte("EUR 10"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Verify(key, wrong(code), []byte("EUR 10")); err != nil || v != (Verdict{Status: Mismatch, AttemptsLeft: 4}) {
		t.Fatalf("wrong guess on b: %+v %v", v, err)
	}
	if v, err := a.Verify(key, wrong(code), []byte("EUR 10")); err != nil || v != (Verdict{Status: Mismatch, AttemptsLeft: 3}) {
		t.Fatalf("wrong guess on a, counted with b's: %+v %v", v, err)
	}
	if v, err := b.Verify(key, code, []byte("EUR 10")); err != nil || v.Status != Verified {
		t.Fatalf("right code on b: %+v %v", v, err)
	}
	if v, err := a.Verify(key, code, []byte("EUR 10")); err != nil || v.Status != NotFound {
		t.Fatalf("replay on a: %+v %v", v, err)
	}
	if _, _, err := b.Issue(key, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Revoke(key); !ok || err != nil {
		t.Fatalf("revoke on a: %v %v", ok, err)
	}
	if err := a.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if s := a.Stats(); s.Issued != 1 || s.Mismatched != 1 || s.Revoked != 1 || s.Unavailable != 0 {
		t.Fatalf("a's stats: %+v", s)
	}
}

func TestRedisTwoInstancesShareOneStore(t *testing.T) {
	testTwoInstances(t, redisEnv(t, "OTPENGINE_REDIS_URL"))
}

func TestRedisClusterTwoInstancesShareOneStore(t *testing.T) {
	testTwoInstances(t, redisEnv(t, "OTPENGINE_REDIS_CLUSTER"))
}

func TestRedisArguments(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RedisURL = "redis://127.0.0.1:1/0"
	cfg.Secret = []byte("too short")
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "secret must be between 16 and 1024 bytes long, got 9 bytes") {
		t.Fatalf("short secret: %v", err)
	}
	cfg.Secret = testSecret
	cfg.RedisURL = "http://example.com"
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "url must be a redis://") {
		t.Fatalf("bad URL: %v", err)
	}
	// Every credential form the redis crate reads, in a URL refused for another
	// reason: the error names the URL with the password hidden.
	for _, url := range []string{
		"redis://alice:hunter2@localhost/notadb",
		"redis://localhost/notadb?password=hunter2",
		"redis+unix:///run/redis.sock?pass=hunter2&db=x",
		"redis+cluster://alice:hunter2@a:1,,b:2",
	} {
		cfg.RedisURL = url
		_, err := New(cfg)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "url must be") || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%s: %v", url, err)
		}
	}
	// Without a URL a secret keys an in-memory engine's digests (the engine's
	// rule, as in every language); a Redis setting is refused by name.
	cfg.RedisURL = ""
	memory, err := New(cfg)
	if err != nil {
		t.Fatalf("secret without Redis: %v", err)
	}
	memory.Close()
	cfg.RedisResponseTimeout = time.Second
	if _, err := New(cfg); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "redis_response_timeout_ms must be left unset without a Redis URL") {
		t.Fatalf("a timeout without Redis: %v", err)
	}
	cfg = DefaultConfig()
	cfg.RedisURL = "redis://127.0.0.1:1/0" // nothing listens on port 1
	cfg.Secret = testSecret
	cfg.RedisConnectTimeout = 200 * time.Millisecond
	_, err = New(cfg)
	if !errors.Is(err, ErrBackendUnavailable) || !strings.Contains(err.Error(), "redis at 127.0.0.1:1 unreachable") {
		t.Fatalf("unreachable: %v", err)
	}
}

// A redis-server this test alone controls, on a free loopback port.
type ownServer struct {
	binary, dir string
	port        int
	cmd         *exec.Cmd
}

func startServer(t *testing.T) *ownServer {
	binary := redisEnv(t, "OTPENGINE_REDIS_SERVER")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &ownServer{binary: binary, dir: t.TempDir(), port: port}
	s.start(t)
	t.Cleanup(s.kill)
	return s
}

func (s *ownServer) start(t *testing.T) {
	s.cmd = exec.Command(s.binary, "--port", fmt.Sprint(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Bounded poll until it accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d did not start: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *ownServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

func TestRedisOutageIsErrBackendUnavailableAndTheEngineRecovers(t *testing.T) {
	server := startServer(t)
	e := redisEngine(t, fmt.Sprintf("redis://127.0.0.1:%d/0", server.port))
	code, _, err := e.Issue([]byte("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server.kill()
	v, err := e.Verify([]byte("alice"), code, nil)
	if !errors.Is(err, ErrBackendUnavailable) || v != (Verdict{}) || v.Status == Verified {
		t.Fatalf("verify during the outage: %+v %v", v, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("redis at 127.0.0.1:%d", server.port)) {
		t.Fatalf("the error names the server: %v", err)
	}
	if _, _, err := e.Issue([]byte("bob"), nil); !errors.Is(err, ErrBackendUnavailable) {
		t.Fatalf("issue during the outage: %v", err)
	}
	if ok, err := e.Revoke([]byte("alice")); ok || !errors.Is(err, ErrBackendUnavailable) {
		t.Fatalf("revoke during the outage: %v %v", ok, err)
	}
	if ok, err := e.Unlock([]byte("alice")); ok || !errors.Is(err, ErrBackendUnavailable) {
		t.Fatalf("unlock during the outage: %v %v", ok, err)
	}
	if s := e.Stats(); s.Unavailable != 4 {
		t.Fatalf("stats during the outage: %+v", s)
	}
	server.start(t)
	// The same engine: nothing was persisted, so the code is gone, and new ones work.
	if v, err := e.Verify([]byte("alice"), code, nil); err != nil || v.Status != NotFound {
		t.Fatalf("after the restart: %+v %v", v, err)
	}
	code, _, err = e.Issue([]byte("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Verify([]byte("alice"), code, nil); err != nil || v.Status != Verified {
		t.Fatalf("after the restart: %+v %v", v, err)
	}
}

// A TOTP code verified on one instance is a replay on the other; failures are
// counted across both.
func TestTOTPAcrossInstances(t *testing.T) {
	for _, name := range []string{"OTPENGINE_REDIS_URL", "OTPENGINE_REDIS_CLUSTER"} {
		t.Run(name, func(t *testing.T) {
			url := redisEnv(t, name)
			a, b := redisEngine(t, url), redisEngine(t, url)
			key := []byte(fmt.Sprintf("go-totp-%d", time.Now().UnixNano()))
			secret := []byte("12345678901234567890")
			p := DefaultTOTPParams()
			t0 := time.Unix(1_700_000_000, 0)
			code, err := TOTP(secret, t0, p)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := a.VerifyTOTP(key, secret, code, p, t0); err != nil || v.Status != Verified {
				t.Fatalf("first: %+v, %v", v, err)
			}
			if v, err := b.VerifyTOTP(key, secret, code, p, t0); err != nil || v.Status != Replayed {
				t.Fatalf("other instance: %+v, %v", v, err)
			}
			b.VerifyTOTP(key, secret, "x", p, t0)
			if v, err := a.VerifyTOTP(key, secret, "x", p, t0); err != nil || v != (Verdict{Status: Mismatch, AttemptsLeft: 98}) {
				t.Fatalf("failures across instances: %+v, %v", v, err)
			}
		})
	}
}

func TestRedisOverMutualTLSAndAsAnACLUser(t *testing.T) {
	mtls, auth := redisEnv(t, "OTPENGINE_REDIS_MTLS_URL"), redisEnv(t, "OTPENGINE_REDIS_AUTH_URL")
	base := func(url string) Config {
		cfg := DefaultConfig()
		cfg.RedisURL = url
		cfg.Secret = testSecret
		cfg.RedisNamespace = "otpengine-go-security"
		cfg.RedisConnectTimeout = 500 * time.Millisecond
		cfg.RedisResponseTimeout = 500 * time.Millisecond
		return cfg
	}
	use := func(cfg Config) {
		t.Helper()
		e, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer e.Close()
		key := uniqueKey(t)
		code, _, err := e.Issue(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := e.Verify(key, code, nil); err != nil || v.Status != Verified {
			t.Fatalf("verify: %+v %v", v, err)
		}
	}
	tls := base(mtls)
	tls.RedisCAFile = os.Getenv("OTPENGINE_REDIS_TLS_CA")
	tls.RedisClientCert = os.Getenv("OTPENGINE_REDIS_TLS_CLIENT_CERT")
	tls.RedisClientKey = os.Getenv("OTPENGINE_REDIS_TLS_CLIENT_KEY")
	use(tls)
	noCert := tls
	noCert.RedisClientCert, noCert.RedisClientKey = "", ""
	if _, err := New(noCert); !errors.Is(err, ErrBackendUnavailable) || !strings.Contains(err.Error(), "TLS handshake failed") {
		t.Fatalf("no client certificate: %v", err)
	}

	acl := base(auth)
	acl.RedisUsername = os.Getenv("OTPENGINE_REDIS_ACL_USER")
	acl.RedisPassword = Password(os.Getenv("OTPENGINE_REDIS_ACL_PASSWORD"))
	use(acl)
	wrongPassword := acl
	wrongPassword.RedisPassword = "wrong-hunter2"
	_, err := New(wrongPassword)
	if !errors.Is(err, ErrBackendUnavailable) || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("wrong password: %v", err)
	}
	for _, shown := range []string{fmt.Sprintf("%v", wrongPassword), fmt.Sprintf("%+v", wrongPassword), fmt.Sprintf("%#v", wrongPassword)} {
		if strings.Contains(shown, "hunter2") {
			t.Fatalf("printing a Config shows its password: %s", shown)
		}
	}
}

func TestRedisExactCountsCountTheKeys(t *testing.T) {
	url := redisEnv(t, "OTPENGINE_REDIS_URL")
	for _, exact := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.RedisURL, cfg.Secret = url, testSecret
		cfg.RedisNamespace = fmt.Sprintf("otpengine-go-counts-%v-%d", exact, time.Now().UnixNano())
		cfg.RedisExactCounts = exact
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Issue([]byte("alice"), nil); err != nil {
			t.Fatal(err)
		}
		want := uint64(0)
		if exact {
			want = 1
		}
		if live := e.Stats().Live; live != want {
			t.Fatalf("exact counts %v: live %d, want %d", exact, live, want)
		}
		e.Close()
	}
}
