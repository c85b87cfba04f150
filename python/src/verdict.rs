//! `otpengine.Verdict`: core's verdict, read through properties.

use otpengine_core::{format_duration, DurationUnit, Verdict};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBool;

use crate::errors::{status_index, types};

/// The answer to ``Engine.verify``: true only when verified.
#[pyclass(module = "otpengine", name = "Verdict", frozen)]
pub(crate) struct PyVerdict {
    /// Core's verdict itself; its `Status` was checked known when it was made.
    verdict: Verdict,
}

/// The verdicts that carry nothing but their status. Each is made once, in
/// [`SHARED`], and handed out to every verify that answers it: a success (or a
/// miss) allocates nothing, about 400 instructions a call by callgrind, a
/// twentieth of an issue+verify pair from Python.
const PLAIN: [Verdict; 4] = [
    Verdict::Verified,
    Verdict::Expired,
    Verdict::NotFound,
    Verdict::Replayed,
];

/// The Python objects of [`PLAIN`], in its order.
static SHARED: PyOnceLock<Vec<Py<PyVerdict>>> = PyOnceLock::new();

impl PyVerdict {
    /// Core's verdict as a Python `Verdict`; an `OtpError` for a status this
    /// version does not know.
    pub(crate) fn new(py: Python<'_>, verdict: Verdict) -> PyResult<Py<PyVerdict>> {
        status_index(py, &verdict)?;
        let Some(plain) = PLAIN.iter().position(|v| *v == verdict) else {
            return Py::new(py, PyVerdict { verdict });
        };
        let shared = SHARED.get_or_try_init(py, || {
            PLAIN
                .iter()
                .map(|&verdict| Py::new(py, PyVerdict { verdict }))
                .collect::<PyResult<Vec<_>>>()
        })?;
        Ok(shared[plain].clone_ref(py))
    }

    fn index(&self) -> usize {
        // Known since `new` checked it.
        match self.verdict {
            Verdict::Verified => 0,
            Verdict::Mismatch { .. } => 1,
            Verdict::Locked { .. } => 2,
            Verdict::Expired => 3,
            Verdict::NotFound => 4,
            _ => 5,
        }
    }
}

#[pymethods]
impl PyVerdict {
    /// The outcome, an ``otpengine.Status``.
    #[getter]
    fn status(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(types(py)?.status[self.index()].clone_ref(py))
    }

    /// Wrong guesses left, on ``MISMATCH``; else 0.
    #[getter]
    fn attempts_left(&self) -> u32 {
        match self.verdict {
            Verdict::Mismatch { attempts_left } => attempts_left,
            _ => 0,
        }
    }

    /// Seconds until the lockout ends, on ``LOCKED`` (0.0 for a burned code,
    /// which a new issue replaces); else 0.0.
    #[getter]
    fn retry_after(&self) -> f64 {
        match self.verdict {
            Verdict::Locked { retry_after } => retry_after.as_secs_f64(),
            _ => 0.0,
        }
    }

    fn __bool__(&self) -> bool {
        self.verdict.is_verified()
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Py<PyAny> {
        match other.cast::<PyVerdict>() {
            Ok(o) => PyBool::new(py, o.get().verdict == self.verdict)
                .to_owned()
                .into_any()
                .unbind(),
            Err(_) => py.NotImplemented(),
        }
    }

    fn __hash__(&self) -> u64 {
        (self.index() as u64) << 32 | u64::from(self.attempts_left())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let status = self.status(py)?.bind(py).str()?.to_string();
        Ok(match self.verdict {
            Verdict::Mismatch { attempts_left } => {
                format!("Verdict(status={status}, attempts_left={attempts_left})")
            }
            Verdict::Locked { retry_after } if !retry_after.is_zero() => format!(
                "Verdict(status={status}, retry_after={})",
                format_duration(retry_after, DurationUnit::Seconds)
            ),
            _ => format!("Verdict(status={status})"),
        })
    }
}
