//! `otpengine._native`: the Python face of `otpengine-core`.
//!
//! No rules live here: arguments become core values (or a `TypeError` /
//! `ValueError` naming the keyword argument), core answers become Python values,
//! and core refusals become the exceptions of `otpengine._types`. Batches copy
//! their inputs into Rust first, then release the GIL for the whole loop.
//!
//! The files, each a translation table: `args.rs` (arguments as core values),
//! `errors.rs` (core's errors as exceptions), `verdict.rs` (`Verdict`),
//! `engine.rs` (`Engine`), `scope.rs`, `totp.rs` and `message.rs`.

mod args;
mod engine;
mod errors;
mod message;
mod scope;
mod totp;
mod verdict;

pub(crate) use args::*;
pub(crate) use errors::*;

use engine::PyEngine;
use pyo3::prelude::*;
use verdict::PyVerdict;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<PyVerdict>()?;
    m.add_function(wrap_pyfunction!(totp::hotp, m)?)?;
    m.add_function(wrap_pyfunction!(totp::totp, m)?)?;
    m.add_function(wrap_pyfunction!(totp::new_totp_secret, m)?)?;
    m.add_function(wrap_pyfunction!(totp::totp_uri, m)?)?;
    m.add_function(wrap_pyfunction!(totp::qr_svg, m)?)?;
    m.add_function(wrap_pyfunction!(message::sms_text, m)?)?;
    m.add_function(wrap_pyfunction!(scope::ip_scope, m)?)?;
    m.add_function(wrap_pyfunction!(message::android_app_hash, m)?)?;
    m.add_function(wrap_pyfunction!(message::sms_segments, m)?)?;
    m.add_function(wrap_pyfunction!(message::voice_text, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
