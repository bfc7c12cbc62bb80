//! Backend profiles: which backends a worker serves, read from the TOML
//! file named by `RUNFLEET_CONFIG` (`--config`).
//!
//! ```toml
//! [profiles.echo]
//! kind = "echo"
//!
//! [profiles.agent]
//! kind = "process"
//! program = "/usr/bin/python3"
//! args = ["/opt/agents/agent.py"]
//! mode = "per-run"               # or "per-command" (the default)
//! env = ["PATH", "HOME", "LANG"]  # passed through from the worker's environment
//! secret_env = ["OPENAI_API_KEY"] # passed through, and redacted everywhere
//! kill_grace = "5s"
//! inactivity_timeout = "5m"
//! max_duration = "1h"
//! ```
//!
//! A worker serves exactly the profiles in its file; without a file it
//! serves one profile, `echo`. Errors name the profile and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default SIGTERM → SIGKILL grace.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// The default idle time after which a kept per-run process is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the profiles could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A profile is inconsistent.
    #[error("{path}: profiles.{profile}.{key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The profile.
        profile: String,
        /// The offending key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The worker's configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Profile name → profile.
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Which backend implementation a profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The deterministic built-in backend.
    Echo,
    /// An external program speaking the line protocol (`schemas/README.md`).
    Process,
}

/// Whether a `process` profile spawns per command or keeps one process per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessMode {
    /// A fresh process for every command (the default).
    #[default]
    PerCommand,
    /// One process per run on this worker, kept between commands; closed
    /// when the run ends, when it has been idle for `idle_timeout`, or when
    /// the worker stops.
    PerRun,
}

/// One backend profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The backend implementation.
    pub kind: BackendKind,
    /// `process`: the program to run.
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// `process`: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `process`: per command or per run.
    #[serde(default)]
    pub mode: ProcessMode,
    /// `process`: environment variables passed through from the worker
    /// (nothing else is, besides the `RUNFLEET_*` run variables).
    #[serde(default)]
    pub env: Vec<String>,
    /// `process`: variables passed through whose values are secrets: they
    /// are scrubbed from every event, receipt, dead letter and log line.
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// `process`: SIGTERM, then SIGKILL after this long.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "show_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub kill_grace: Option<Duration>,
    /// No event or output for this long ends the command with `inactivity-timeout`.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "show_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub inactivity_timeout: Option<Duration>,
    /// A command running longer than this ends with `max-duration`.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "show_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_duration: Option<Duration>,
    /// `per-run`: a kept process idle this long is closed.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "show_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
}

impl Profile {
    /// The built-in `echo` profile.
    pub fn echo() -> Profile {
        Profile {
            kind: BackendKind::Echo,
            program: None,
            args: Vec::new(),
            mode: ProcessMode::PerCommand,
            env: Vec::new(),
            secret_env: Vec::new(),
            kill_grace: None,
            inactivity_timeout: None,
            max_duration: None,
            idle_timeout: None,
        }
    }

    /// The SIGTERM → SIGKILL grace.
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace.unwrap_or(DEFAULT_KILL_GRACE)
    }

    /// The values of the profile's secret variables in this environment.
    pub fn secret_values(&self) -> Vec<String> {
        self.secret_env
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .filter(|value| !value.is_empty())
            .collect()
    }

    fn validate(&self, path: &Path, name: &str) -> Result<(), ProfilesError> {
        let invalid = |key: &'static str, message: &str| ProfilesError::Invalid {
            path: path.to_owned(),
            profile: name.to_owned(),
            key,
            message: message.to_owned(),
        };
        if runfleet_schemas::ProfileName::new(name).is_err() {
            return Err(ProfilesError::Parse {
                path: path.to_owned(),
                message: format!(
                    "profiles.{name}: a profile name is 1-128 characters of A-Z a-z 0-9 _ -"
                ),
            });
        }
        match self.kind {
            BackendKind::Process => {
                if self.program.is_none() {
                    return Err(invalid("program", "required for kind \"process\""));
                }
            }
            BackendKind::Echo => {
                if self.program.is_some() {
                    return Err(invalid(
                        "program",
                        "only a \"process\" profile runs a program",
                    ));
                }
                if !self.args.is_empty() {
                    return Err(invalid("args", "only a \"process\" profile runs a program"));
                }
            }
        }
        for (key, value) in [
            ("kill_grace", self.kill_grace),
            ("inactivity_timeout", self.inactivity_timeout),
            ("max_duration", self.max_duration),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        Ok(())
    }
}

/// The profiles a worker serves.
#[derive(Debug, Clone)]
pub struct Profiles {
    profiles: BTreeMap<String, Profile>,
}

impl Default for Profiles {
    /// One profile, `echo`.
    fn default() -> Profiles {
        Profiles {
            profiles: BTreeMap::from([("echo".to_owned(), Profile::echo())]),
        }
    }
}

impl Profiles {
    /// Loads `path`, or the default when `None`.
    ///
    /// # Errors
    /// [`ProfilesError`] naming the file, the profile and the key.
    pub fn load(path: Option<&Path>) -> Result<Profiles, ProfilesError> {
        let Some(path) = path else {
            return Ok(Profiles::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ProfilesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Profiles::parse(path, &text)
    }

    /// Validates profiles read from the configuration (`path` names it in
    /// errors); none means the default, `echo`.
    ///
    /// # Errors
    /// [`ProfilesError::Invalid`] naming the profile and the key.
    pub fn from_map(
        path: &Path,
        profiles: BTreeMap<String, Profile>,
    ) -> Result<Profiles, ProfilesError> {
        if profiles.is_empty() {
            return Ok(Profiles::default());
        }
        for (name, profile) in &profiles {
            profile.validate(path, name)?;
        }
        Ok(Profiles { profiles })
    }

    /// Parses a configuration file's text (`path` names it in errors).
    ///
    /// # Errors
    /// [`ProfilesError`].
    pub fn parse(path: &Path, text: &str) -> Result<Profiles, ProfilesError> {
        let file: ConfigFile = toml::from_str(text).map_err(|err| ProfilesError::Parse {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        for (name, profile) in &file.profiles {
            profile.validate(path, name)?;
        }
        if file.profiles.is_empty() {
            return Err(ProfilesError::Parse {
                path: path.to_owned(),
                message: "no [profiles.<name>] table: the worker would serve nothing".into(),
            });
        }
        Ok(Profiles {
            profiles: file.profiles,
        })
    }

    /// The profile called `name`, if this worker serves it.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Every profile, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Profile)> {
        self.profiles.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The names served.
    pub fn names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }
}

fn show_duration<S: Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_str(&humantime::format_duration(*d).to_string()),
        None => serializer.serialize_none(),
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|err| serde::de::Error::custom(format!("{text:?} is not a duration: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profiles, String> {
        Profiles::parse(Path::new("worker.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_process_profile() {
        let profiles = parse(
            r#"
            [profiles.agent]
            kind = "process"
            program = "/bin/cat"
            mode = "per-run"
            env = ["PATH"]
            kill_grace = "2s"
            inactivity_timeout = "90s"
            "#,
        )
        .unwrap();
        let agent = profiles.get("agent").unwrap();
        assert_eq!(agent.kind, BackendKind::Process);
        assert_eq!(agent.mode, ProcessMode::PerRun);
        assert_eq!(agent.kill_grace(), Duration::from_secs(2));
        assert_eq!(agent.inactivity_timeout, Some(Duration::from_secs(90)));
        assert!(profiles.get("echo").is_none(), "only what the file names");
    }

    #[test]
    fn errors_name_the_profile_and_key() {
        assert_eq!(
            parse("[profiles.agent]\nkind = \"process\"\n").unwrap_err(),
            "worker.toml: profiles.agent.program: required for kind \"process\""
        );
        let err =
            parse("[profiles.agent]\nkind = \"echo\"\nmax_duration = \"soon\"\n").unwrap_err();
        assert!(
            err.contains("max_duration") && err.contains("\"soon\" is not a duration"),
            "{err}"
        );
        let err = parse("[profiles.agent]\nkind = \"echo\"\ncolour = 1\n").unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = parse("[profiles.a]\nkind = \"shell\"\n").unwrap_err();
        assert!(err.contains("unknown variant `shell`"), "{err}");
    }

    #[test]
    fn the_default_serves_echo() {
        assert_eq!(Profiles::default().names(), vec!["echo".to_owned()]);
    }
}
