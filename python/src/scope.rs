//! Scopes in Python: the ``scope_limits`` mapping of the constructor, the
//! ``scopes`` mapping of the calls, and ``ip_scope``. Argument conversion only;
//! every rule is core's (`otpengine_core::scope`).

use std::borrow::Cow;

use otpengine_core::scope::{self as core_scope, ScopeLimit};
use otpengine_core::Field;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping, PyString};

use crate::{byte_arg, int_arg, seconds_arg, to_py_err};

/// ``{"ip": {"max_issues": 10, "issue_window": 3600, ...}, ...}`` as core's
/// limits, in the mapping's order; a field left out keeps `ScopeLimit::new`'s
/// value (no limit, an hour's window).
pub(crate) fn limits_arg(limits: &Bound<'_, PyAny>) -> PyResult<Vec<ScopeLimit>> {
    let limits = limits.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err("scope_limits must be a mapping of scope name to its limits")
    })?;
    let mut out = Vec::new();
    for item in limits.items()?.iter() {
        let (name, fields): (String, Bound<'_, PyAny>) = item.extract()?;
        let fields = fields
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err(format!("scope_limits[{name:?}] must be a dict")))?;
        let mut limit = ScopeLimit::new(name.clone());
        for (field, value) in fields.iter() {
            let field: String = field.extract()?;
            match field.as_str() {
                "max_issues" => limit.max_issues = int_arg(Field::ScopeMaxIssues, &value)?,
                "issue_window" => {
                    limit.issue_window = seconds_arg(Field::ScopeIssueWindow, &value)?
                }
                "max_failures" => limit.max_failures = int_arg(Field::ScopeMaxFailures, &value)?,
                "failure_window" => {
                    limit.failure_window = seconds_arg(Field::ScopeFailureWindow, &value)?
                }
                other => {
                    return Err(PyValueError::new_err(format!(
                        "scope_limits[{name:?}] has no field {other:?} (max_issues, issue_window, \
                         max_failures, failure_window)"
                    )))
                }
            }
        }
        out.push(limit);
    }
    Ok(out)
}

/// A call's ``scopes`` mapping (name to ``str`` or ``bytes``) as (name, value)
/// pairs; ``None`` is none.
#[inline]
pub(crate) fn scopes_arg<'a>(
    scopes: Option<&'a Bound<'_, PyAny>>,
) -> PyResult<Vec<(String, Cow<'a, [u8]>)>> {
    match scopes.filter(|s| !s.is_none()) {
        None => Ok(Vec::new()),
        Some(scopes) => scope_items(scopes),
    }
}

/// The items of a `scopes` mapping.
fn scope_items<'a>(scopes: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Cow<'a, [u8]>)>> {
    let mapping = scopes
        .cast::<PyMapping>()
        .map_err(|_| PyTypeError::new_err("scopes must be a mapping of scope name to value"))?;
    let mut out = Vec::new();
    for item in mapping.items()?.iter() {
        let name = item.get_item(0)?;
        let name: String = name
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("scopes' names must be str"))?
            .to_str()?
            .to_owned();
        let value = item.get_item(1)?;
        let value = byte_arg(&value, "scopes' values")?.into_owned();
        out.push((name, Cow::Owned(value)));
    }
    Ok(out)
}

/// The scope value for a client address (IPv4 as ``/32``, IPv6 as its ``/64``).
#[pyfunction]
pub(crate) fn ip_scope(py: Python<'_>, addr: &str) -> PyResult<String> {
    core_scope::ip_scope(addr).map_err(|e| to_py_err(py, e))
}
