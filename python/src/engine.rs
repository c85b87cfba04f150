//! `otpengine.Engine`: the constructor's keyword arguments as core's `Config`
//! and `StoreOptions`, each method a call of core's `Engine`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use otpengine_core::scope::Scope;
use otpengine_core::StoreOptions;
use otpengine_core::{Alphabet, Clock, Config, Engine, Field, ManualClock, Zeroizing};
use pyo3::exceptions::{PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use crate::args::*;
use crate::errors::*;
use crate::verdict::PyVerdict;
use crate::{scope, totp};

/// An OTP engine. Safe to share between threads; batch calls release the GIL.
///
/// An in-memory engine belongs to one process: in a child forked after it was
/// built, its copy starts empty, and the first call there emits one
/// ``RuntimeWarning`` saying so (use ``redis_url`` for multi-process servers).
#[pyclass(module = "otpengine", name = "Engine", frozen)]
pub(crate) struct PyEngine {
    engine: Engine,
}

impl PyEngine {
    /// Runs `call` on the engine, without the GIL when it is a Redis engine (a
    /// network round trip, during which other Python threads should run); an
    /// in-memory call is shorter than releasing and taking back the GIL.
    ///
    /// The first call on an in-memory engine inherited across `fork()` warns
    /// first (see [`PyEngine::warn_if_forked`]).
    fn call<R: Send>(&self, py: Python<'_>, call: impl FnOnce(&Engine) -> R + Send) -> PyResult<R> {
        self.warn_if_forked(py)?;
        let engine = &self.engine;
        Ok(if engine.redis_server().is_some() {
            py.detach(|| call(engine))
        } else {
            call(engine)
        })
    }

    /// Core empties an in-memory engine in a forked child on its first use there;
    /// this says so once, as a `RuntimeWarning` (an exception under `-W error`).
    fn warn_if_forked(&self, py: Python<'_>) -> PyResult<()> {
        match self.engine.reset_if_forked() {
            Some(reset) => {
                let message =
                    std::ffi::CString::new(reset.to_string()).expect("the warning has no NUL byte");
                PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &message, 1)
            }
            None => Ok(()),
        }
    }
}

#[pymethods]
impl PyEngine {
    /// Builds an engine. Every argument is keyword-only; ``None`` keeps the
    /// engine's default (see the README for defaults and bounds). Durations are
    /// float seconds. A value out of bounds raises ``ValueError`` naming it.
    ///
    /// With ``redis_url`` the engine keeps its state in Redis, shared by every
    /// engine built over the same server with the same ``secret`` (16 to 1024
    /// bytes, required then); ``BackendUnavailable`` if Redis cannot be reached
    /// (naming why: unreachable, TLS handshake, authentication). Over TLS
    /// (``rediss://``), ``redis_ca_file`` is the server's CA (else the system's
    /// roots) and ``redis_client_cert`` and ``redis_client_key`` a client
    /// certificate; ``redis_username`` and ``redis_password`` override the
    /// URL's credentials; ``redis_namespace`` prefixes every key. A server whose
    /// ``maxmemory-policy`` evicts keys is refused (``ValueError``) unless
    /// ``redis_accept_eviction``: an evicted key is a lost lockout. With
    /// ``redis_exact_counts`` the store keeps key indexes, so ``len()``,
    /// ``stats()["live"]`` and ``["held"]`` count and a standalone server holds
    /// ``capacity``; without (the default) they read 0.
    #[new]
    #[pyo3(signature = (
        *,
        code_length=None,
        alphabet=None,
        ttl=None,
        max_attempts=None,
        resend_cooldown=None,
        max_issues_per_window=None,
        issue_window=None,
        max_failures_per_key=None,
        lockout=None,
        codes_per_key=None,
        capacity=None,
        shards=None,
        manual_clock=false,
        redis_url=None,
        secret=None,
        redis_connect_timeout=None,
        redis_response_timeout=None,
        escalate_lockouts=None,
        max_lockout=None,
        redis_namespace=None,
        redis_ca_file=None,
        redis_client_cert=None,
        redis_client_key=None,
        redis_username=None,
        redis_password=None,
        redis_accept_eviction=false,
        redis_exact_counts=false,
        scope_limits=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        code_length: Option<&Bound<'_, PyAny>>,
        alphabet: Option<&str>,
        ttl: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        resend_cooldown: Option<&Bound<'_, PyAny>>,
        max_issues_per_window: Option<&Bound<'_, PyAny>>,
        issue_window: Option<&Bound<'_, PyAny>>,
        max_failures_per_key: Option<&Bound<'_, PyAny>>,
        lockout: Option<&Bound<'_, PyAny>>,
        codes_per_key: Option<&Bound<'_, PyAny>>,
        capacity: Option<&Bound<'_, PyAny>>,
        shards: Option<&Bound<'_, PyAny>>,
        manual_clock: bool,
        redis_url: Option<&str>,
        secret: Option<&Bound<'_, PyAny>>,
        redis_connect_timeout: Option<&Bound<'_, PyAny>>,
        redis_response_timeout: Option<&Bound<'_, PyAny>>,
        escalate_lockouts: Option<bool>,
        max_lockout: Option<&Bound<'_, PyAny>>,
        redis_namespace: Option<String>,
        redis_ca_file: Option<PathBuf>,
        redis_client_cert: Option<PathBuf>,
        redis_client_key: Option<PathBuf>,
        redis_username: Option<String>,
        redis_password: Option<String>,
        redis_accept_eviction: bool,
        redis_exact_counts: bool,
        scope_limits: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut c = Config::default();
        if let Some(v) = scope_limits.filter(|v| !v.is_none()) {
            c.scope_limits = scope::limits_arg(v)?;
        }
        if let Some(v) = code_length {
            c.code_length = int_arg(Field::CodeLength, v)?;
        }
        if let Some(v) = alphabet {
            c.alphabet = Alphabet::from_name(v).map_err(|e| value_error(&e))?;
        }
        if let Some(v) = ttl {
            c.ttl = seconds_arg(Field::Ttl, v)?;
        }
        if let Some(v) = max_attempts {
            c.max_attempts = int_arg(Field::MaxAttempts, v)?;
        }
        if let Some(v) = resend_cooldown {
            c.resend_cooldown = seconds_arg(Field::ResendCooldown, v)?;
        }
        if let Some(v) = max_issues_per_window {
            c.max_issues_per_window = int_arg(Field::MaxIssuesPerWindow, v)?;
        }
        if let Some(v) = issue_window {
            c.issue_window = seconds_arg(Field::IssueWindow, v)?;
        }
        if let Some(v) = max_failures_per_key {
            c.max_failures_per_key = int_arg(Field::MaxFailuresPerKey, v)?;
        }
        if let Some(v) = lockout {
            c.lockout = seconds_arg(Field::Lockout, v)?;
        }
        if let Some(v) = escalate_lockouts {
            c.escalate_lockouts = v;
        }
        if let Some(v) = max_lockout {
            c.max_lockout = seconds_arg(Field::MaxLockout, v)?;
        }
        if let Some(v) = codes_per_key {
            c.codes_per_key = int_arg(Field::CodesPerKey, v)?;
        }
        if let Some(v) = capacity {
            c.capacity = int_arg(Field::Capacity, v)?;
        }
        if let Some(v) = shards {
            c.shards = Some(int_arg(Field::Shards, v)?);
        }
        if manual_clock {
            c.clock = Clock::manual(&ManualClock::new());
        }
        let secret = secret
            .map(|s| {
                s.cast::<PyBytes>()
                    .map(|b| Zeroizing::new(b.as_bytes().to_vec()))
                    .map_err(|_| {
                        PyTypeError::new_err(format!(
                            "secret must be bytes, got {}",
                            s.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ))
                    })
            })
            .transpose()?;
        let seconds =
            |field, v: Option<&Bound<'_, PyAny>>| v.map(|v| seconds_arg(field, v)).transpose();
        // What was given, as given: which settings go together is core's rule
        // (Engine::build), the same in every language.
        let store = StoreOptions {
            redis_url: redis_url.map(str::to_string),
            secret,
            namespace: redis_namespace,
            connect_timeout: seconds(Field::RedisConnectTimeout, redis_connect_timeout)?,
            response_timeout: seconds(Field::RedisResponseTimeout, redis_response_timeout)?,
            ca_file: redis_ca_file,
            client_cert: redis_client_cert,
            client_key: redis_client_key,
            username: redis_username,
            password: redis_password.map(Zeroizing::new),
            accept_eviction: redis_accept_eviction,
            exact_counts: redis_exact_counts,
        };
        // Connecting and loading the scripts takes a round trip or two.
        let engine = match store.redis_url {
            Some(_) => py.detach(|| Engine::build(c, store)),
            None => Engine::build(c, store),
        };
        Ok(PyEngine {
            engine: engine.map_err(|e| to_py_err(py, e))?,
        })
    }

    /// Issues a code for ``key`` (``str`` or ``bytes``), bound to ``context``,
    /// valid for ``ttl`` seconds (``None``: the engine's ttl). Raises
    /// ``RateLimited``, ``KeyLocked`` or ``CapacityExceeded``; nothing changes then.
    #[pyo3(signature = (key, context=None, ttl=None, *, scopes=None))]
    fn issue<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        context: Option<&Bound<'py, PyAny>>,
        ttl: Option<&Bound<'py, PyAny>>,
        scopes: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyString>> {
        let key = key_arg(key)?;
        let context = context_arg(context)?;
        let ttl = ttl
            .filter(|t| !t.is_none())
            .map(|t| seconds_arg(Field::Ttl, t))
            .transpose()?;
        let scopes = scope::scopes_arg(scopes)?;
        let issued = self.call(py, |engine| {
            if scopes.is_empty() {
                return match ttl {
                    None => engine.issue(&key, &context),
                    Some(ttl) => engine.issue_with_ttl(&key, &context, ttl),
                };
            }
            let scopes: Vec<Scope> = scopes.iter().map(|(n, v)| Scope::new(n, &**v)).collect();
            engine.issue_scoped(&key, &context, ttl, &scopes)
        })?;
        // The code straight into a Python string: no Rust copy of it, and its
        // bytes checked once, by CPython (they are ASCII).
        let code = issued.map_err(|e| to_py_err(py, e))?.code;
        PyString::from_bytes(py, code.as_bytes())
    }

    /// Checks what a person typed. Spaces and hyphens are ignored (and case, for
    /// the alphanumeric alphabet); anything else that is not a code is a counted
    /// mismatch. Returns a ``Verdict``, which is true only when verified.
    #[pyo3(signature = (key, code, context=None, *, scopes=None))]
    fn verify(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        code: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
        scopes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyVerdict>> {
        let key = key_arg(key)?;
        let code = byte_arg(code, "code")?;
        let context = context_arg(context)?;
        let scopes = scope::scopes_arg(scopes)?;
        let verdict = self
            .call(py, |engine| {
                if scopes.is_empty() {
                    return engine.verify(&key, &code, &context);
                }
                let scopes: Vec<Scope> = scopes.iter().map(|(n, v)| Scope::new(n, &**v)).collect();
                engine.verify_scoped(&key, &code, &context, &scopes)
            })?
            .map_err(|e| to_py_err(py, e))?;
        PyVerdict::new(py, verdict)
    }

    /// Verifies an authenticator-app code (RFC 6238 TOTP); see the stub.
    #[pyo3(signature = (key, secret, code, *, digits=None, period=None, algorithm=None, skew_back=None, skew_ahead=None, at=None, scopes=None))]
    #[allow(clippy::too_many_arguments)]
    fn verify_totp(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        secret: &Bound<'_, PyAny>,
        code: &Bound<'_, PyAny>,
        digits: Option<&Bound<'_, PyAny>>,
        period: Option<&Bound<'_, PyAny>>,
        algorithm: Option<&Bound<'_, PyAny>>,
        skew_back: Option<&Bound<'_, PyAny>>,
        skew_ahead: Option<&Bound<'_, PyAny>>,
        at: Option<&Bound<'_, PyAny>>,
        scopes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyVerdict>> {
        let scopes = scope::scopes_arg(scopes)?;
        let key = key_arg(key)?;
        let secret = totp::secret_arg(secret)?;
        let code = code
            .cast::<PyString>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "code must be a str, got {}",
                    code.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?
            .to_cow()?;
        let params = totp::params_arg(digits, period, algorithm, skew_back, skew_ahead)?;
        let at = match at.filter(|a| !a.is_none()) {
            Some(a) => {
                Some(std::time::UNIX_EPOCH + Duration::from_secs(totp::unix_time_arg(Some(a))?))
            }
            None => None,
        };
        let verdict = self
            .call(py, |engine| {
                let scopes: Vec<Scope> = scopes.iter().map(|(n, v)| Scope::new(n, &**v)).collect();
                engine.verify_totp_scoped(&key, &secret, &code, &params, at, &scopes)
            })?
            .map_err(|e| to_py_err(py, e))?;
        PyVerdict::new(py, verdict)
    }

    /// Lifts the failure lockout of the scope ``name`` = ``value`` and clears
    /// its counts; ``True`` if it had a count in a running window.
    fn unlock_scope(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let value = byte_arg(value, "value")?;
        self.call(py, |engine| engine.unlock_scope(name, &value))?
            .map_err(|e| to_py_err(py, e))
    }

    /// Drops the key's codes; ``True`` if one was pending. Limits stay.
    fn revoke(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.call(py, |engine| engine.revoke(&key))?
            .map_err(|e| to_py_err(py, e))
    }

    /// A cheap health check for readiness probes: returns when the engine's
    /// store answers now (always, in memory; one ``PING`` of the server, or of
    /// every primary of a cluster), else raises ``BackendUnavailable`` naming
    /// the server and why. Counts in no statistic.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        self.call(py, |engine| engine.ping())?
            .map_err(|e| to_py_err(py, e))
    }

    /// Lifts the lockout of the key's TOTP state; ``True`` if it had failures.
    fn unlock_totp(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.call(py, |engine| engine.unlock_totp(&key))?
            .map_err(|e| to_py_err(py, e))
    }

    /// Lifts the key's lockout and clears its failure count; ``True`` if there was one.
    fn unlock(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key)?;
        self.call(py, |engine| engine.unlock(&key))?
            .map_err(|e| to_py_err(py, e))
    }

    /// Keys with a pending code.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.call(py, Engine::len)
    }

    /// Counters of answers since the engine was built, and the keys held now:
    /// issued, verified, mismatched, locked, expired, rate_limited, revoked, live,
    /// not_found, capacity_exceeded, unavailable, held. With Redis, ``live`` and
    /// ``held`` are the whole store's (the last values read, while it is down).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.call(py, Engine::stats)?;
        let d = PyDict::new(py);
        // Core's one list of fixed counters and gauges (the `Stats` TypedDict).
        for (name, value) in s.fields() {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    /// The stats in the Prometheus text format.
    fn prometheus(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.call(py, Engine::stats)?.to_prometheus())
    }

    /// Moves a manual clock forward by ``seconds``; ``OtpError`` on a system clock.
    fn advance(&self, py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let by = Duration::try_from_secs_f64(seconds.extract::<f64>()?).map_err(|_| {
            PyValueError::new_err(format!(
                "seconds must be a non-negative number, got {}",
                repr(seconds)
            ))
        })?;
        self.engine.advance_clock(by).map_err(|e| to_py_err(py, e))
    }

    /// Issues a code for each key (with one context for all), in order. Returns
    /// one entry per key: the code (``str``), or the exception instance the single
    /// ``issue`` would have raised for that key (``RateLimited``, ``KeyLocked``,
    /// ``CapacityExceeded``, ``BackendUnavailable``, or ``ValueError`` /
    /// ``TypeError`` for a bad key), as ``asyncio.gather(...,
    /// return_exceptions=True)`` does; a refusal never loses the codes around it.
    /// With Redis, the keys after the first that finds it unavailable get that
    /// error untried. Releases the GIL. A ``str`` or ``bytes`` as ``keys`` (not an
    /// iterable of keys) raises ``TypeError``.
    #[pyo3(signature = (keys, context=None))]
    fn issue_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        if keys.is_instance_of::<PyString>() || keys.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "keys must be an iterable of keys (str or bytes), not a single str or bytes",
            ));
        }
        // Each key's bytes, borrowed from its object (kept alive by `objects`), or
        // the error of a key that is neither str nor bytes: no copy per key.
        let objects: Vec<PyResult<Bound<'_, PyAny>>> = keys.try_iter()?.collect();
        let keys: Vec<PyResult<Cow<'_, [u8]>>> = objects
            .iter()
            .map(|k| match k {
                Ok(k) => byte_arg(k, "key"),
                Err(e) => Err(e.clone_ref(py)),
            })
            .collect();
        let context = match context.filter(|c| !c.is_none()) {
            Some(c) => Some(byte_arg(c, "context")?.into_owned()),
            None => None,
        };
        self.warn_if_forked(py)?;
        let engine = &self.engine;
        let valid: Vec<&[u8]> = keys.iter().filter_map(|k| k.as_deref().ok()).collect();
        let context = context.unwrap_or_default();
        let answers = py.detach(|| engine.issue_many(valid, &context));
        let mut answers = answers.into_iter();
        keys.into_iter()
            .map(|key| {
                let answer = match key {
                    Err(type_error) => return Ok(type_error.into_value(py).into_any()),
                    Ok(_) => answers.next().expect("one answer per valid key"),
                };
                Ok(match answer {
                    Ok(issued) => PyString::new(py, issued.code.as_str()).into_any().unbind(),
                    Err(e) => to_py_err(py, e).into_value(py).into_any(),
                })
            })
            .collect()
    }

    /// Verifies ``(key, code)`` or ``(key, code, context)`` items in order.
    /// Returns one entry per item: its ``Status``, or the exception instance the
    /// single ``verify`` would have raised for it (``BackendUnavailable``, or
    /// ``ValueError`` / ``TypeError`` for a bad item), so the answers before a
    /// failure are never lost. With Redis, the items after the first that finds
    /// it unavailable get that error untried. Releases the GIL.
    fn verify_many<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        type Parts<'py> = (
            Bound<'py, PyAny>,
            Bound<'py, PyAny>,
            Option<Bound<'py, PyAny>>,
        );
        let parts = |item: PyResult<Bound<'py, PyAny>>| -> PyResult<Parts<'py>> {
            let item = item?;
            let tuple = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err("items must be (key, code) or (key, code, context) tuples")
            })?;
            if !(2..=3).contains(&tuple.len()) {
                return Err(PyTypeError::new_err(format!(
                    "items must be (key, code) or (key, code, context) tuples, got one of {} elements",
                    tuple.len()
                )));
            }
            let context = match tuple.len() {
                3 => Some(tuple.get_item(2)?).filter(|c| !c.is_none()),
                _ => None,
            };
            Ok((tuple.get_item(0)?, tuple.get_item(1)?, context))
        };
        // The items' objects, kept alive here, and their bytes borrowed from them:
        // no copy per item.
        let objects: Vec<PyResult<Parts<'py>>> = items.try_iter()?.map(parts).collect();
        type Item<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, Cow<'a, [u8]>);
        let items: Vec<PyResult<Item<'_>>> = objects
            .iter()
            .map(|p| {
                let (key, code, context) = p.as_ref().map_err(|e| e.clone_ref(py))?;
                let context = match context {
                    Some(c) => byte_arg(c, "context")?,
                    None => Cow::Borrowed(&[][..]),
                };
                Ok((byte_arg(key, "key")?, byte_arg(code, "code")?, context))
            })
            .collect();
        let t = types(py)?;
        self.warn_if_forked(py)?;
        let engine = &self.engine;
        let valid: Vec<(&[u8], &[u8], &[u8])> = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|(k, c, x)| (k.as_ref(), c.as_ref(), x.as_ref()))
            .collect();
        let answers = py.detach(|| engine.verify_many(valid));
        let mut answers = answers.into_iter();
        Ok(items
            .into_iter()
            .map(|item| match item {
                Err(type_error) => type_error.into_value(py).into_any(),
                Ok(_) => match answers.next().expect("one answer per valid item") {
                    Ok(verdict) => match status_index(py, &verdict) {
                        Ok(index) => t.status[index].clone_ref(py),
                        Err(e) => e.into_value(py).into_any(),
                    },
                    Err(e) => to_py_err(py, e).into_value(py).into_any(),
                },
            })
            .collect())
    }

    fn __repr__(&self) -> String {
        match self.engine.redis_server() {
            Some(server) => format!(
                "<otpengine.Engine: redis at {server}, code length {}>",
                self.engine.code_length()
            ),
            None => format!(
                "<otpengine.Engine: {} shards, code length {}>",
                self.engine.shard_count(),
                self.engine.code_length()
            ),
        }
    }
}
