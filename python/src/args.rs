//! Python arguments as core values: keys, contexts and codes as bytes (a
//! `str` as UTF-8), whole numbers and seconds checked against core's bounds,
//! or a `TypeError` / `ValueError` naming the argument.

use std::borrow::Cow;
use std::time::Duration;

use otpengine_core::{constraint, Field, Got, InvalidInput};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::errors::value_error;

/// A key, context or code: `str` (as UTF-8) or `bytes`, borrowed where possible.
#[inline]
pub(crate) fn byte_arg<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|e| {
            PyValueError::new_err(format!("{name} must be encodable as UTF-8: {e}"))
        })?;
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be str or bytes, got {}",
        obj.get_type().name()?
    )))
}

/// A key's bytes; core checks its length (a `ValueError` through `to_py_err`).
#[inline]
pub(crate) fn key_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    byte_arg(obj, "key")
}

/// A context's bytes (`None`: no context); core checks its length.
#[inline]
pub(crate) fn context_arg<'a>(obj: Option<&'a Bound<'_, PyAny>>) -> PyResult<Cow<'a, [u8]>> {
    match obj.filter(|o| !o.is_none()) {
        Some(obj) => byte_arg(obj, "context"),
        None => Ok(Cow::Borrowed(&[])),
    }
}

/// A value refused before it can reach the core (negative, not finite), reported
/// against the field's real bounds.
pub(crate) fn out_of_bounds(field: Field, raw: String) -> PyErr {
    match constraint(field) {
        Some(constraint) => value_error(&InvalidInput {
            field,
            constraint,
            got: Got::Raw(raw),
        }),
        None => PyValueError::new_err(format!("{} is out of bounds, got {raw}", field.name())),
    }
}

/// A whole-number argument: `TypeError` if it is not an int, `ValueError` naming
/// the field if it does not fit (a negative count, `2**64`).
pub(crate) fn int_arg<T: TryFrom<i128>>(field: Field, obj: &Bound<'_, PyAny>) -> PyResult<T> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{} must be an int, got {}",
            field.name(),
            obj.get_type().name()?
        )));
    }
    let wide: i128 = obj.extract().map_err(|_| out_of_bounds(field, repr(obj)))?;
    T::try_from(wide).map_err(|_| out_of_bounds(field, repr(obj)))
}

/// A number of seconds: `TypeError` if it is not a number, `ValueError` naming the
/// field if it is negative, not finite or too large.
pub(crate) fn seconds_arg(field: Field, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let number = obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>();
    if obj.is_instance_of::<PyBool>() || !number {
        return Err(PyTypeError::new_err(format!(
            "{} must be a number of seconds, got {}",
            field.name(),
            obj.get_type().name()?
        )));
    }
    let value: f64 = obj.extract().map_err(|_| out_of_bounds(field, repr(obj)))?;
    Duration::try_from_secs_f64(value).map_err(|_| out_of_bounds(field, repr(obj)))
}

pub(crate) fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_default()
}
