//! # runfleet-nats — connecting to NATS
//!
//! Authentication and TLS, the same way for the `runfleet` CLI, the
//! producer library and the workers (each depends on this crate, not on
//! the others).
//!
//! | setting | environment | what |
//! |---|---|---|
//! | user, password | `NATS_USER`, `NATS_PASSWORD` | user/password authentication (also accepted as `nats://user:pass@host` in the URL, percent-encoded, when nothing else is configured) |
//! | token | `NATS_TOKEN` | token authentication (also `nats://token@host`) |
//! | NKey seed | `NATS_NKEY_SEED` | NKey challenge signing (the seed, `SU…`) |
//! | credentials file | `NATS_CREDS` | a `.creds` file (user JWT + NKey seed) |
//! | CA | `NATS_CA` | PEM CA bundle to verify the server (implies TLS) |
//! | client certificate | `NATS_CERT`, `NATS_KEY` | PEM certificate and key for mutual TLS |
//! | TLS required | `NATS_TLS` | refuse plaintext connections |
//! | inbox prefix | `NATS_INBOX_PREFIX` | reply subjects (`_INBOX_acme` …) a tenant's permissions allow |
//!
//! Secrets are held in [`NatsAuth`], whose `Debug` output masks them; no
//! error message repeats them.

use std::path::PathBuf;
use std::time::Duration;

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// An authentication or TLS setting is unusable (the message names it, never its value).
    #[error("{setting}: {detail}")]
    Auth {
        /// Which setting.
        setting: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No server answered, or authentication failed.
    #[error("cannot reach NATS at {url}: {cause}")]
    Connect {
        /// The URLs tried, without credentials.
        url: String,
        /// The client's reason.
        cause: async_nats::ConnectError,
    },
}

/// How to authenticate to NATS and secure the connection.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsAuth {
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// NKey seed.
    pub nkey_seed: Option<String>,
    /// Credentials file (JWT + seed).
    pub creds_file: Option<PathBuf>,
    /// CA bundle (PEM) for the server's certificate.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM), for mutual TLS.
    pub tls_key: Option<PathBuf>,
    /// Refuse plaintext.
    pub tls_required: bool,
    /// Prefix of reply inboxes (default `_INBOX`).
    pub inbox_prefix: Option<String>,
}

/// What replaces a secret in `Debug` output and `--dump-config`.
pub const MASK: &str = "********";

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |s: &Option<String>| s.as_ref().map(|_| MASK);
        f.debug_struct("NatsAuth")
            .field("user", &self.user)
            .field("password", &masked(&self.password))
            .field("token", &masked(&self.token))
            .field("nkey_seed", &masked(&self.nkey_seed))
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_required", &self.tls_required)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

impl NatsAuth {
    /// The same settings with every secret replaced by [`MASK`].
    #[must_use]
    pub fn masked(&self) -> NatsAuth {
        let mask = |s: &Option<String>| s.as_ref().map(|_| MASK.to_owned());
        NatsAuth {
            password: mask(&self.password),
            token: mask(&self.token),
            nkey_seed: mask(&self.nkey_seed),
            ..self.clone()
        }
    }

    /// The settings from the `NATS_*` environment variables (see the module docs).
    pub fn from_env() -> NatsAuth {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        NatsAuth {
            user: var("NATS_USER"),
            password: var("NATS_PASSWORD"),
            token: var("NATS_TOKEN"),
            nkey_seed: var("NATS_NKEY_SEED"),
            creds_file: var("NATS_CREDS").map(PathBuf::from),
            tls_ca: var("NATS_CA").map(PathBuf::from),
            tls_cert: var("NATS_CERT").map(PathBuf::from),
            tls_key: var("NATS_KEY").map(PathBuf::from),
            tls_required: var("NATS_TLS").is_some_and(|v| v != "0" && v != "false"),
            inbox_prefix: var("NATS_INBOX_PREFIX"),
        }
    }

    /// Connect options carrying these settings.
    ///
    /// # Errors
    /// [`ConnectError::Auth`] naming the setting that is unusable.
    pub async fn options(&self) -> Result<async_nats::ConnectOptions, ConnectError> {
        let invalid = |setting: &str, detail: String| ConnectError::Auth {
            setting: setting.to_owned(),
            detail,
        };
        let methods = [
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
            self.nkey_seed.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(invalid(
                "nats auth",
                "choose one of user/password, token, NKey seed or credentials file".into(),
            ));
        }
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name("runfleet");
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (Some(_), None) => {
                return Err(invalid("nats password", "a user needs a password".into()));
            }
            (None, Some(_)) => return Err(invalid("nats user", "a password needs a user".into())),
            (None, None) => {}
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &self.nkey_seed {
            // Checked here, so a bad seed is reported as such (without its value).
            if !seed.starts_with('S') || seed.len() < 50 {
                return Err(invalid(
                    "nats nkey seed",
                    "not an NKey seed (expected `SU…`)".into(),
                ));
            }
            options = options.nkey(seed.clone());
        }
        if let Some(path) = &self.creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|err| invalid("nats creds file", format!("{}: {err}", path.display())))?;
        }
        if let Some(ca) = &self.tls_ca {
            if !ca.is_file() {
                return Err(invalid(
                    "nats tls ca",
                    format!("{} is not a file", ca.display()),
                ));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                for path in [cert, key] {
                    if !path.is_file() {
                        return Err(invalid(
                            "nats tls cert",
                            format!("{} is not a file", path.display()),
                        ));
                    }
                }
                options = options
                    .add_client_certificate(cert.clone(), key.clone())
                    .require_tls(true);
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    "nats tls cert",
                    "a client certificate needs its key (and the key its certificate)".into(),
                ));
            }
            (None, None) => {}
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix.clone());
        }
        Ok(options)
    }

    /// Connects to `urls` (comma-separated) with these settings.
    ///
    /// # Errors
    /// [`ConnectError::Auth`] for unusable settings, [`ConnectError::Connect`]
    /// when no server answers or authentication fails.
    pub async fn connect(&self, urls: &str) -> Result<async_nats::Client, ConnectError> {
        let addrs: Vec<async_nats::ServerAddr> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.parse().map_err(|err| ConnectError::Auth {
                    setting: "nats url".into(),
                    detail: format!("{}: {err}", without_userinfo(u)),
                })
            })
            .collect::<Result<_, _>>()?;
        // async-nats reads no credentials from the URL: take them from there
        // when no other authentication is configured (which then wins).
        let configured = self.user.is_some()
            || self.password.is_some()
            || self.token.is_some()
            || self.nkey_seed.is_some()
            || self.creds_file.is_some();
        let options = match userinfo(&addrs) {
            Some(from_url) if !configured => {
                let auth = match from_url {
                    UrlAuth::UserPassword(user, password) => NatsAuth {
                        user: Some(user),
                        password: Some(password),
                        ..self.clone()
                    },
                    UrlAuth::Token(token) => NatsAuth {
                        token: Some(token),
                        ..self.clone()
                    },
                };
                auth.options().await?
            }
            _ => self.options().await?,
        };
        options
            .connect(addrs)
            .await
            .map_err(|cause| ConnectError::Connect {
                url: without_userinfo(urls),
                cause,
            })
    }
}

/// Credentials in a URL's userinfo.
#[derive(Debug, PartialEq)]
enum UrlAuth {
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://token@host` (no password: the NATS convention for a token).
    Token(String),
}

/// The percent-decoded credentials of the first address carrying some.
fn userinfo(addrs: &[async_nats::ServerAddr]) -> Option<UrlAuth> {
    addrs.iter().find_map(|addr| {
        let user = percent_decoded(addr.username()?);
        Some(match addr.password() {
            Some(password) => UrlAuth::UserPassword(user, percent_decoded(password)),
            None => UrlAuth::Token(user),
        })
    })
}

/// `part` of a URL with its `%XX` escapes decoded.
pub fn percent_decoded(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// `urls` with any `user:password@` removed (for messages).
pub fn without_userinfo(urls: &str) -> String {
    urls.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}{}", &u[..scheme + 3], &u[at + 1..])
            }
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let auth = NatsAuth {
            user: Some("acme".into()),
            password: Some("hunter2".into()),
            token: Some("t0ken".into()),
            ..NatsAuth::default()
        };
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("t0ken"),
            "{debug}"
        );
        assert_eq!(auth.masked().password.as_deref(), Some(MASK));
        let addrs: Vec<async_nats::ServerAddr> = ["nats://b:4222", "nats://acme:p%40ss@a:4222"]
            .iter()
            .map(|u| u.parse().unwrap())
            .collect();
        assert_eq!(
            userinfo(&addrs),
            Some(UrlAuth::UserPassword("acme".into(), "p@ss".into()))
        );
        assert_eq!(userinfo(&addrs[..1]), None);
        let token: async_nats::ServerAddr = "nats://s3cr%2Ft@a:4222".parse().unwrap();
        assert_eq!(userinfo(&[token]), Some(UrlAuth::Token("s3cr/t".into())));
        assert_eq!(
            without_userinfo("nats://u:p@a:4222, nats://b:4222"),
            "nats://a:4222, nats://b:4222"
        );
    }

    #[tokio::test]
    async fn unusable_settings_name_the_setting() {
        let two = NatsAuth {
            token: Some("t".into()),
            nkey_seed: Some("SUxxx".into()),
            ..NatsAuth::default()
        };
        let err = two.options().await.unwrap_err().to_string();
        assert!(err.contains("nats auth"), "{err}");
        let half = NatsAuth {
            user: Some("u".into()),
            ..NatsAuth::default()
        };
        assert!(
            half.options()
                .await
                .unwrap_err()
                .to_string()
                .contains("nats password")
        );
        let missing = NatsAuth {
            tls_ca: Some("/nope/ca.pem".into()),
            ..NatsAuth::default()
        };
        let err = missing.options().await.unwrap_err().to_string();
        assert!(
            err.contains("nats tls ca") && err.contains("/nope/ca.pem"),
            "{err}"
        );
    }
}
