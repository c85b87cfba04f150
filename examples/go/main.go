// otpengine from Go: issue a code, check a wrong and a right guess, handle a
// rate-limited resend. Run with `go run .` after `make go-lib`.
package main

import (
	"errors"
	"fmt"
	"log"
	"time"

	"otpengine"
)

func main() {
	cfg := otpengine.DefaultConfig()
	cfg.TTL = 2 * time.Minute
	engine, err := otpengine.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	key := []byte("+15551234567/login")
	code, expiresIn, err := engine.Issue(key, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("issued a %d-digit code, valid for %v (sent by SMS, not printed)\n", len(code), expiresIn)

	verdict, _ := engine.Verify(key, "000000", nil)
	fmt.Printf("a wrong guess: %v (%d attempts left)\n", verdict.Status, verdict.AttemptsLeft)
	verdict, _ = engine.Verify(key, code, nil)
	fmt.Printf("the right code: %v\n", verdict.Status)

	var rateLimited *otpengine.RateLimitedError
	if _, _, err := engine.Issue(key, nil); errors.As(err, &rateLimited) {
		fmt.Printf("an immediate resend: retry after %v\n", rateLimited.RetryAfter.Round(time.Second))
	}
	if verdict.Status != otpengine.Verified {
		log.Fatal("the right code did not verify")
	}
}
