//go:build !otpengine_shared

package otpengine

// By default the package links libotpengine.a into the Go binary: one file to
// deploy. Build it first with `cargo build --release -p otpengine-ffi` (or `make go-lib`).

// #cgo LDFLAGS: ${SRCDIR}/../target/release/libotpengine.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
import "C"
