//go:build !cgo

package otpengine

// This package is a thin layer over the otpengine C library (libotpengine),
// called through cgo: it cannot be built with CGO_ENABLED=0. The line below
// stops such a build with this name in the error, which says what to do.
var _ = otpengine_needs_cgo_build_with_CGO_ENABLED_1_and_a_C_compiler
