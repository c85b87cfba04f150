package otpengine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The message helpers give core's texts (hand-checked examples) and name bad input.
func TestMessages(t *testing.T) {
	text, err := SMSText("123456", "Acme", 5*time.Minute, SMSOptions{})
	if err != nil || text != "Acme: your code is 123456. It expires in 5 minutes. Do not share it." {
		t.Fatalf("default: %q, %v", text, err)
	}
	text, err = SMSText("A7K9Q", "Bank", 119500*time.Millisecond, SMSOptions{
		WebOTPDomain: "bank.example.com", AndroidAppHash: "V0wMPhmEo8U",
	})
	want := "Bank: your code is A7K9Q. It expires in 1 minute. Do not share it.\nV0wMPhmEo8U\n@bank.example.com #A7K9Q"
	if err != nil || text != want {
		t.Fatalf("with both lines: %q, %v", text, err)
	}
	if text, err = SMSText("8812", "Shop", 45*time.Second, SMSOptions{Template: "{code}: {brand}, {minutes}"}); err != nil || text != "8812: Shop, 45 seconds" {
		t.Fatalf("template: %q, %v", text, err)
	}
	long := SMSOptions{Template: "{code}" + strings.Repeat("x", 200)}
	if _, err = SMSText("1234", "Acme", time.Minute, long); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "text must") {
		t.Fatalf("two segments: %v", err)
	}
	long.AllowMultipart = true
	if text, err = SMSText("1234", "Acme", time.Minute, long); err != nil {
		t.Fatalf("multipart allowed: %v", err)
	}
	if enc, n, err := SMSSegments(text); err != nil || enc != "GSM-7" || n != 2 {
		t.Fatalf("segments: %s %d %v", enc, n, err)
	}
	if enc, n, err := SMSSegments(strings.Repeat("ж", 71)); err != nil || enc != "UCS-2" || n != 2 {
		t.Fatalf("UCS-2 segments: %s %d %v", enc, n, err)
	}
	for _, bad := range []struct {
		opts  SMSOptions
		ttl   time.Duration
		named string
	}{
		{SMSOptions{}, 0, "ttl_ms must be between 1000 and 86400000, got 0"},
		{SMSOptions{Template: "{code} {amount}"}, time.Minute, "template_text must"},
		{SMSOptions{WebOTPDomain: "https://a.com"}, time.Minute, "webotp_domain must"},
		{SMSOptions{AndroidAppHash: "short"}, time.Minute, "android_app_hash must"},
	} {
		if _, err := SMSText("1234", "Acme", bad.ttl, bad.opts); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), bad.named) {
			t.Errorf("%+v: %v, want %q", bad.opts, err, bad.named)
		}
	}
	if text, err = VoiceText("123456", "Acme"); err != nil || text != "Your Acme code is 1, 2, 3, 4, 5, 6. Again: 1, 2, 3, 4, 5, 6." {
		t.Fatalf("voice: %q, %v", text, err)
	}
	cert := []byte{0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xc0, 0xff, 0xee}
	if hash, err := AndroidAppHash("com.example.myapp", cert); err != nil || hash != "V0wMPhmEo8U" {
		t.Fatalf("app hash: %q, %v", hash, err)
	}
	if _, err := AndroidAppHash("app", cert); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "package_name must") {
		t.Fatalf("bad package name: %v", err)
	}
}
