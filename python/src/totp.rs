//! The authenticator-app functions of `otpengine_core::totp`, as module functions:
//! argument conversion only. A secret is `bytes` (raw) or `str` (base32, as the
//! apps show it); parameters left `None` take core's defaults.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otpengine_core::totp::{self as core_totp, HashAlgorithm, TotpParams, DEFAULT_SECRET_LEN};
use otpengine_core::{Constraint, Field, Got, InvalidInput};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};
use zeroize::Zeroizing;

use crate::{int_arg, repr, seconds_arg, value_error};

/// A secret as bytes: raw `bytes`, or base32 `str` decoded (wiped on drop).
pub(crate) fn secret_arg(obj: &Bound<'_, PyAny>) -> PyResult<Zeroizing<Vec<u8>>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Zeroizing::new(b.as_bytes().to_vec()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return core_totp::base32_decode(&s.to_cow()?).map_err(|e| value_error(&e));
    }
    Err(PyTypeError::new_err(format!(
        "secret must be bytes (raw) or str (base32), got {}",
        obj.get_type().name()?
    )))
}

/// The parameters, each `None` taking core's default.
pub(crate) fn params_arg<'py>(
    digits: Option<&Bound<'py, PyAny>>,
    period: Option<&Bound<'py, PyAny>>,
    algorithm: Option<&Bound<'py, PyAny>>,
    skew_back: Option<&Bound<'py, PyAny>>,
    skew_ahead: Option<&Bound<'py, PyAny>>,
) -> PyResult<TotpParams> {
    let mut p = TotpParams::default();
    let given = |o: Option<&Bound<'py, PyAny>>| o.filter(|o| !o.is_none()).cloned();
    if let Some(v) = given(digits) {
        p.digits = int_arg(Field::TotpDigits, &v)?;
    }
    if let Some(v) = given(period) {
        p.period = seconds_arg(Field::TotpPeriod, &v)?;
    }
    if let Some(v) = given(algorithm) {
        let name = v.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err("algorithm must be a str (\"SHA1\", \"SHA256\" or \"SHA512\")")
        })?;
        p.algorithm = HashAlgorithm::from_name(&name.to_cow()?).map_err(|e| value_error(&e))?;
    }
    if let Some(v) = given(skew_back) {
        p.skew_back = int_arg(Field::TotpSkewBack, &v)?;
    }
    if let Some(v) = given(skew_ahead) {
        p.skew_ahead = int_arg(Field::TotpSkewAhead, &v)?;
    }
    p.validate().map_err(|e| value_error(&e))?;
    Ok(p)
}

/// `at` as whole Unix seconds: `None` is now; an int or float of seconds; an
/// aware `datetime`. A naive `datetime` is refused: its time zone is a guess.
pub(crate) fn unix_time_arg(at: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(at) = at.filter(|a| !a.is_none()) else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        return Ok(now.as_secs());
    };
    let number = at.is_instance_of::<PyFloat>() || at.is_instance_of::<PyInt>();
    let seconds: f64 = if number && !at.is_instance_of::<PyBool>() {
        at.extract()?
    } else if at.hasattr("tzinfo")? && at.hasattr("timestamp")? {
        if at.getattr("tzinfo")?.is_none() {
            return Err(PyValueError::new_err(
                "at must be an aware datetime (with a tzinfo, e.g. datetime.timezone.utc), \
                 got a naive one",
            ));
        }
        at.call_method0("timestamp")?.extract()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "at must be Unix seconds (int or float) or an aware datetime, got {}",
            at.get_type().name()?
        )));
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "at must be a time at or after 1970-01-01 UTC, got {}",
            repr(at)
        )));
    }
    let seconds = seconds.floor() as u64; // saturating: a huge float is refused below
    core_totp::check_unix_time(seconds).map_err(|e| value_error(&e))?;
    Ok(seconds)
}

/// The HOTP code (RFC 4226) of ``secret`` at ``counter``.
#[pyfunction]
#[pyo3(signature = (secret, counter, *, digits=None, algorithm=None))]
pub(crate) fn hotp(
    secret: &Bound<'_, PyAny>,
    counter: u64,
    digits: Option<&Bound<'_, PyAny>>,
    algorithm: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let secret = secret_arg(secret)?;
    let p = params_arg(digits, None, algorithm, None, None)?;
    let code =
        core_totp::hotp(&secret, counter, p.digits, p.algorithm).map_err(|e| value_error(&e))?;
    Ok(code.as_str().to_owned())
}

/// The TOTP code (RFC 6238) of ``secret`` at ``at`` (default now).
#[pyfunction]
#[pyo3(signature = (secret, *, at=None, digits=None, period=None, algorithm=None))]
pub(crate) fn totp(
    secret: &Bound<'_, PyAny>,
    at: Option<&Bound<'_, PyAny>>,
    digits: Option<&Bound<'_, PyAny>>,
    period: Option<&Bound<'_, PyAny>>,
    algorithm: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let secret = secret_arg(secret)?;
    let p = params_arg(digits, period, algorithm, None, None)?;
    let code = core_totp::totp(&secret, unix_time_arg(at)?, &p).map_err(|e| value_error(&e))?;
    Ok(code.as_str().to_owned())
}

/// A new random TOTP secret of ``length`` bytes (default 20, 16 to 64).
#[pyfunction]
#[pyo3(signature = (length=None))]
pub(crate) fn new_totp_secret<'py>(
    py: Python<'py>,
    length: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let length = match length.filter(|l| !l.is_none()) {
        Some(l) => int_arg::<usize>(Field::TotpSecret, l).map_err(|_| {
            value_error(&InvalidInput {
                field: Field::TotpSecret,
                constraint: Constraint::Length {
                    min: core_totp::SECRET_LEN_RANGE.0,
                    max: core_totp::SECRET_LEN_RANGE.1,
                },
                got: Got::Raw(repr(l)),
            })
        })?,
        None => DEFAULT_SECRET_LEN,
    };
    let secret = core_totp::generate_secret(length).map_err(|e| value_error(&e))?;
    Ok(PyBytes::new(py, &secret))
}

/// The enrolment URI (``otpauth://totp/...``) for an authenticator app.
#[pyfunction]
#[pyo3(signature = (secret, *, issuer, account, digits=None, period=None, algorithm=None))]
pub(crate) fn totp_uri(
    secret: &Bound<'_, PyAny>,
    issuer: &str,
    account: &str,
    digits: Option<&Bound<'_, PyAny>>,
    period: Option<&Bound<'_, PyAny>>,
    algorithm: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let secret = secret_arg(secret)?;
    let p = params_arg(digits, period, algorithm, None, None)?;
    core_totp::otpauth_uri(&secret, issuer, account, &p).map_err(|e| value_error(&e))
}

/// ``text`` as a QR code in SVG.
#[pyfunction]
pub(crate) fn qr_svg(text: &str) -> PyResult<String> {
    core_totp::qr_svg(text).map_err(|e| value_error(&e))
}
