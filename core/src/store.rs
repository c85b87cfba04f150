//! Where an engine keeps its state, as a front end is told it: the rules of
//! which settings go together, decided once here for every language.
//!
//! The front ends (C, Go, Python) pass what they were given, nothing more:
//! `None` for a setting left out, whatever its default. [`Engine::build`]
//! decides the rest: without a Redis URL, an in-memory engine (the secret, if
//! one is given, keys its digests; a Redis setting is an error naming it);
//! with one, a Redis engine, which needs a secret, with core's defaults for
//! what was left out.

use std::path::PathBuf;
use std::time::Duration;

use crate::digest::Secret;
use crate::engine::Engine;
use crate::error::{Constraint, Error, Field, Got, InvalidInput};
use crate::policy::Config;
use crate::Zeroizing;

/// Every setting of where an engine's state lives; `None` (or `false`): not given.
#[derive(Clone, Default)]
pub struct StoreOptions {
    /// A Redis URL (see `RedisOptions::url`, feature `redis`); `None`: in memory.
    pub redis_url: Option<String>,
    /// The secret behind key ids and code digests, 16..=1024 bytes: required
    /// with a Redis URL; in memory, given only when several engines must agree
    /// on digests (else each draws its own).
    pub secret: Option<Zeroizing<Vec<u8>>>,
    /// `RedisOptions::namespace`.
    pub namespace: Option<String>,
    /// `RedisOptions::connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `RedisOptions::response_timeout`.
    pub response_timeout: Option<Duration>,
    /// `RedisOptions::ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `RedisOptions::client_cert`.
    pub client_cert: Option<PathBuf>,
    /// `RedisOptions::client_key`.
    pub client_key: Option<PathBuf>,
    /// `RedisOptions::username`.
    pub username: Option<String>,
    /// `RedisOptions::password`.
    pub password: Option<Zeroizing<String>>,
    /// `RedisOptions::accept_eviction`.
    pub accept_eviction: bool,
    /// `RedisOptions::exact_counts`.
    pub exact_counts: bool,
}

impl std::fmt::Debug for StoreOptions {
    /// Neither the secret nor the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<given>"))
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl StoreOptions {
    /// The first Redis setting given, if any (they need a Redis URL).
    fn first_redis_setting(&self) -> Option<Field> {
        [
            (self.namespace.is_some(), Field::RedisNamespace),
            (self.connect_timeout.is_some(), Field::RedisConnectTimeout),
            (self.response_timeout.is_some(), Field::RedisResponseTimeout),
            (self.ca_file.is_some(), Field::RedisCaFile),
            (self.client_cert.is_some(), Field::RedisClientCert),
            (self.client_key.is_some(), Field::RedisClientKey),
            (self.username.is_some(), Field::RedisUsername),
            (self.password.is_some(), Field::RedisPassword),
            (self.accept_eviction, Field::RedisAcceptEviction),
            (self.exact_counts, Field::RedisExactCounts),
        ]
        .into_iter()
        .find_map(|(given, field)| given.then_some(field))
    }
}

impl Engine {
    /// Builds the engine `store` describes, with `config` (whose own `secret`
    /// must be left unset: give it in `store`). What goes with what is decided
    /// here, for every front end:
    ///
    /// - without a Redis URL, an in-memory engine; a Redis setting given
    ///   anyway is [`Error::InvalidInput`] naming it, and `secret`, if given,
    ///   keys the digests;
    /// - with one, a Redis engine (feature `redis`; without it the URL is
    ///   refused), which needs `secret`; what is not given takes
    ///   `RedisOptions`' defaults.
    pub fn build(mut config: Config, store: StoreOptions) -> Result<Engine, Error> {
        let secret = store.secret.as_ref().map(|s| Secret::new(s)).transpose()?;
        let Some(url) = store.redis_url.clone() else {
            if let Some(field) = store.first_redis_setting() {
                return Err(InvalidInput {
                    field,
                    constraint: Constraint::Format("left unset without a Redis URL"),
                    got: Got::Raw("a value".into()),
                }
                .into());
            }
            if secret.is_some() {
                config.secret = secret;
            }
            return Engine::new(config);
        };
        let Some(secret) = secret else {
            return Err(InvalidInput {
                field: Field::Secret,
                constraint: Constraint::Format(
                    "given with a Redis URL: 16 to 1024 bytes, the same on every instance",
                ),
                got: Got::Raw("none".into()),
            }
            .into());
        };
        redis_engine(config, url, secret, store)
    }
}

#[cfg(feature = "redis")]
fn redis_engine(
    config: Config,
    url: String,
    secret: Secret,
    store: StoreOptions,
) -> Result<Engine, Error> {
    let defaults = crate::RedisOptions::new(url, secret);
    let options = crate::RedisOptions {
        namespace: store.namespace.unwrap_or(defaults.namespace.clone()),
        connect_timeout: store.connect_timeout.unwrap_or(defaults.connect_timeout),
        response_timeout: store.response_timeout.unwrap_or(defaults.response_timeout),
        ca_file: store.ca_file,
        client_cert: store.client_cert,
        client_key: store.client_key,
        username: store.username,
        password: store.password,
        accept_eviction: store.accept_eviction,
        exact_counts: store.exact_counts,
        ..defaults
    };
    Engine::new_redis(config, options)
}

#[cfg(not(feature = "redis"))]
fn redis_engine(
    _config: Config,
    _url: String,
    _secret: Secret,
    _store: StoreOptions,
) -> Result<Engine, Error> {
    Err(InvalidInput {
        field: Field::RedisUrl,
        constraint: Constraint::Format(
            "left unset: this build of otpengine-core has no Redis backend (feature `redis`)",
        ),
        got: Got::Raw("a URL".into()),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<Engine, Error>) -> (Field, String) {
        match result {
            Err(Error::InvalidInput(e)) => (e.field, e.to_string()),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn redis_settings_need_a_url_and_a_url_needs_a_secret() {
        let timeout = StoreOptions {
            response_timeout: Some(Duration::from_secs(2)),
            ..StoreOptions::default()
        };
        assert_eq!(
            field(Engine::build(Config::default(), timeout)),
            (
                Field::RedisResponseTimeout,
                "redis_response_timeout must be left unset without a Redis URL, got a value".into()
            )
        );
        let no_secret = StoreOptions {
            redis_url: Some("redis://127.0.0.1:1/0".into()),
            ..StoreOptions::default()
        };
        assert_eq!(
            field(Engine::build(Config::default(), no_secret)).0,
            Field::Secret
        );
        let short = StoreOptions {
            secret: Some(Zeroizing::new(b"short".to_vec())),
            ..StoreOptions::default()
        };
        assert_eq!(
            field(Engine::build(Config::default(), short)).1,
            "secret must be between 16 and 1024 bytes long, got 5 bytes"
        );
        // A secret without a URL keys an in-memory engine's digests.
        let shared = StoreOptions {
            secret: Some(Zeroizing::new(vec![7; 32])),
            ..StoreOptions::default()
        };
        let a = Engine::build(Config::default(), shared.clone()).unwrap();
        assert!(a.redis_server().is_none());
    }
}
