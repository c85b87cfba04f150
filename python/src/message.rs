//! The message helpers of `otpengine_core::message`, as module functions:
//! argument conversion only (a ttl in seconds, a certificate as bytes).

use otpengine_core::message::{self as core_message, SmsOptions};
use otpengine_core::Field;
use pyo3::prelude::*;

use crate::{seconds_arg, value_error};

/// The SMS that carries ``code``.
#[pyfunction]
#[pyo3(signature = (code, *, brand, ttl, webotp_domain=None, android_app_hash=None, template=None, allow_multipart=false))]
#[allow(clippy::too_many_arguments)] // Python's keyword arguments
pub(crate) fn sms_text(
    code: &str,
    brand: &str,
    ttl: &Bound<'_, PyAny>,
    webotp_domain: Option<&str>,
    android_app_hash: Option<&str>,
    template: Option<&str>,
    allow_multipart: bool,
) -> PyResult<String> {
    let ttl = seconds_arg(Field::Ttl, ttl)?;
    let options = SmsOptions {
        template,
        webotp_domain,
        android_app_hash,
        allow_multipart,
    };
    core_message::sms_text(code, brand, ttl, &options).map_err(|e| value_error(&e))
}

/// The Android SMS Retriever hash of an app.
#[pyfunction]
pub(crate) fn android_app_hash(package_name: &str, signing_certificate: &[u8]) -> PyResult<String> {
    core_message::android_app_hash(package_name, signing_certificate).map_err(|e| value_error(&e))
}

/// The encoding a text needs and the SMS segments it takes.
#[pyfunction]
pub(crate) fn sms_segments(text: &str) -> (&'static str, usize) {
    let count = core_message::sms_segments(text);
    (count.encoding.name(), count.segments)
}

/// What a voice call says.
#[pyfunction]
#[pyo3(signature = (code, *, brand))]
pub(crate) fn voice_text(code: &str, brand: &str) -> PyResult<String> {
    core_message::voice_text(code, brand).map_err(|e| value_error(&e))
}
