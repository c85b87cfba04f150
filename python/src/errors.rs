//! Core's refusals as Python's exceptions (the classes of `otpengine._types`,
//! imported once), in one function; bad values as `ValueError`s naming the
//! keyword argument.

use otpengine_core::{DurationUnit, Error, InvalidInput, Verdict};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The Python classes this module hands out, imported once from `otpengine._types`.
pub(crate) struct Types {
    /// `Status` members, in the order of [`status_index`].
    pub(crate) status: [Py<PyAny>; 6],
    pub(crate) otp_error: Py<PyType>,
    pub(crate) rate_limited: Py<PyType>,
    pub(crate) key_locked: Py<PyType>,
    pub(crate) capacity_exceeded: Py<PyType>,
    pub(crate) backend_unavailable: Py<PyType>,
}

pub(crate) static TYPES: PyOnceLock<Types> = PyOnceLock::new();

pub(crate) fn types(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get_or_try_init(py, || {
        let m = py.import("otpengine._types")?;
        let status = m.getattr("Status")?;
        let member = |name: &str| status.getattr(name).map(Bound::unbind);
        let class = |name: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        Ok(Types {
            status: [
                member("VERIFIED")?,
                member("MISMATCH")?,
                member("LOCKED")?,
                member("EXPIRED")?,
                member("NOT_FOUND")?,
                member("REPLAYED")?,
            ],
            otp_error: class("OtpError")?,
            rate_limited: class("RateLimited")?,
            key_locked: class("KeyLocked")?,
            capacity_exceeded: class("CapacityExceeded")?,
            backend_unavailable: class("BackendUnavailable")?,
        })
    })
}

/// The verdict's `Status` (an index into [`Types::status`]), or an `OtpError` for a
/// verdict a newer core gives and this module does not know yet.
pub(crate) fn status_index(py: Python<'_>, verdict: &Verdict) -> PyResult<usize> {
    Ok(match verdict {
        Verdict::Verified => 0,
        Verdict::Mismatch { .. } => 1,
        Verdict::Locked { .. } => 2,
        Verdict::Expired => 3,
        Verdict::NotFound => 4,
        Verdict::Replayed => 5,
        other => {
            let message = format!("a verdict this version of otpengine does not know: {other:?}");
            return Err(PyErr::from_value(
                types(py)?.otp_error.bind(py).call1((message,))?,
            ));
        }
    })
}

pub(crate) fn value_error(e: &InvalidInput) -> PyErr {
    PyValueError::new_err(e.render(e.field.name(), DurationUnit::Seconds))
}

/// The one translation of core errors into Python exceptions.
pub(crate) fn to_py_err(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    let build = || -> PyResult<PyErr> {
        let t = types(py)?;
        let instance = match &e {
            Error::InvalidInput(invalid) => return Ok(value_error(invalid)),
            Error::RateLimited {
                retry_after, scope, ..
            } => t.rate_limited.bind(py).call1((
                message,
                retry_after.as_secs_f64(),
                scope.clone(),
            ))?,
            Error::Locked { retry_after, .. } => t
                .key_locked
                .bind(py)
                .call1((message, retry_after.as_secs_f64()))?,
            Error::CapacityExceeded { .. } => t.capacity_exceeded.bind(py).call1((message,))?,
            Error::Unavailable { .. } => t.backend_unavailable.bind(py).call1((message,))?,
            _ => t.otp_error.bind(py).call1((message,))?,
        };
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|err| err)
}
