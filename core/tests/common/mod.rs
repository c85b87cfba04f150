//! Helpers of the Redis tests: the servers (servers.rs) and engines over them.

#![allow(dead_code)] // each test binary uses its own part of this module

mod servers;

pub use servers::*;

#[cfg(feature = "redis")]
pub use with_redis::*;

#[cfg(feature = "redis")]
mod with_redis {
    use otpengine_core::{Config, Engine, RedisOptions, Secret};

    /// The secret every test engine shares (as the instances of one service would).
    pub fn secret() -> Secret {
        Secret::new(b"otpengine test secret, 32 bytes").expect("a valid secret")
    }

    /// Options for `url` in a fresh namespace, with exact counts (the tests
    /// read `len()`, `live` and `held`; [`acl_options`] has the default, none).
    pub fn options(url: &str, label: &str) -> RedisOptions {
        RedisOptions {
            namespace: super::unique_namespace(label),
            exact_counts: true,
            ..RedisOptions::new(url, secret())
        }
    }

    /// An engine over `url` in a fresh namespace of its own.
    pub fn engine(url: &str, config: Config) -> Engine {
        Engine::new_redis(config, options(url, "e")).expect("a Redis engine")
    }

    /// Options for the mutual-TLS server: its CA and the client certificate.
    pub fn mtls_options(label: &str) -> RedisOptions {
        RedisOptions {
            ca_file: Some(super::var(super::TLS_CA).into()),
            client_cert: Some(super::var(super::TLS_CLIENT_CERT).into()),
            client_key: Some(super::var(super::TLS_CLIENT_KEY).into()),
            ..options(&super::var(super::MTLS), label)
        }
    }

    /// Options for the password server's ACL user, given apart from the URL,
    /// and the default of no indexes (`exact_counts` off).
    pub fn acl_options(label: &str) -> RedisOptions {
        RedisOptions {
            username: Some(super::var(super::ACL_USER)),
            password: Some(super::var(super::ACL_PASSWORD).into()),
            exact_counts: false,
            ..options(&super::var(super::AUTH), label)
        }
    }
}
