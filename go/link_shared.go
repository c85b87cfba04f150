//go:build otpengine_shared

package otpengine

// With `-tags otpengine_shared` the package links libotpengine.so instead; the
// program then needs it at run time (an rpath to target/release is set, or use
// LD_LIBRARY_PATH or an installed copy). The binary needs the library by its
// soname, libotpengine.so.<ABIVersion> (`make go-lib` links that name to the
// build in target/release; `make install` installs the library under it).

// #cgo LDFLAGS: -L${SRCDIR}/../target/release -lotpengine -Wl,-rpath,${SRCDIR}/../target/release
import "C"
