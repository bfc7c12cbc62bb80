//! The one place a setting is declared: `settings!` turns each
//! declaration (key, type, default, flag type, environment variable, help
//! line, meaning) into a field of [`super::Settings`] with its default, a
//! flag of [`super::Overrides`] (whose `[default: …]` is read from that same
//! default), and a row of the README's settings table ([`readme_table`]).
//!
//! The TOML key is the field's name; the flag is the name with `-`;
//! `--dump-config` prints the serialized [`super::Settings`].

/// One declared setting, as the README's table shows it.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// The TOML key (the flag is it with `-`).
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// How the default is written when it is not the value itself (Markdown).
    pub shown: Option<&'static str>,
    /// What the setting means (Markdown, the README's third column).
    pub meaning: &'static str,
    /// Hidden from `--help` (crash-test hooks).
    pub hidden: bool,
}

/// `Some(literal)` when the declaration names one.
macro_rules! optional {
    () => {
        None
    };
    ($value:literal) => {
        Some($value)
    };
}

/// Whether the declaration says `hidden = true`.
macro_rules! is_hidden {
    () => {
        false
    };
    ($hidden:literal) => {
        $hidden
    };
}

/// Declares every setting once; see the module docs. `more` holds the
/// settings that only the file (and their own environment layer) sets.
macro_rules! settings {
    (
        flags {
            $(
                $(#[$attr:meta])*
                $name:ident: $ty:ty = $default:expr,
                    flag $flag:ty, env $env:literal $(, shown $shown:literal)? $(, hidden = $hidden:literal)?
                    $(, clap($($extra:tt)*))?;
                    help $help:literal;
                    meaning $meaning:literal;
            )*
        }
        more {
            $( $(#[$more_attr:meta])* $more:ident: $more_ty:ty = $more_default:expr; )*
        }
    ) => {
        /// Every setting of a worker (the effective configuration).
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $(
                #[doc = $help]
                #[doc = ""]
                #[doc = $meaning]
                $(#[$attr])*
                pub $name: $ty,
            )*
            $( $(#[$more_attr])* pub $more: $more_ty, )*
        }

        impl Default for Settings {
            fn default() -> Settings {
                Settings {
                    $( $name: $default, )*
                    $( $more: $more_default, )*
                }
            }
        }

        /// The command line and environment layer: every value is optional,
        /// so what is not given falls through to the file and the defaults.
        #[derive(Debug, Clone, Default, clap::Args, Serialize)]
        pub struct Overrides {
            /// The configuration file (TOML) [default: none, serving echo].
            #[arg(long = "config", env = "RUNFLEET_CONFIG")]
            #[serde(skip)]
            pub config_file: Option<PathBuf>,
            $(
                #[doc = $help]
                #[arg(
                    long,
                    env = $env,
                    help = $crate::config::declare::help_line($help, stringify!($name), optional!($($shown)?)),
                    hide = is_hidden!($($hidden)?)
                    $(, $($extra)*)?
                )]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$flag>,
            )*
        }

        /// Every flag's setting, in the order of the README's table.
        pub const DECLARED: &[$crate::config::declare::Declared] = &[
            $(
                $crate::config::declare::Declared {
                    key: stringify!($name),
                    env: $env,
                    shown: optional!($($shown)?),
                    meaning: $meaning,
                    hidden: is_hidden!($($hidden)?),
                },
            )*
        ];
    };
}

pub(super) use {is_hidden, optional, settings};

/// A flag's help line: its help and its default, as the README's table
/// writes it (without Markdown).
pub fn help_line(help: &str, key: &str, shown: Option<&str>) -> String {
    format!(
        "{help} [default: {}]",
        default_text(key, shown).replace('`', "")
    )
}

/// How the default of `key` is written: the declared text, or the value
/// `--dump-config` shows for it.
fn default_text(key: &str, shown: Option<&str>) -> String {
    if let Some(shown) = shown {
        return shown.to_owned();
    }
    let defaults = serde_json::to_value(super::Settings::default()).unwrap_or_default();
    match defaults.get(key) {
        None | Some(serde_json::Value::Null) => "none".to_owned(),
        Some(serde_json::Value::String(text)) => format!("`{text}`"),
        Some(serde_json::Value::Bool(false)) => "off".to_owned(),
        Some(value) => format!("`{value}`"),
    }
}

/// The README's settings table, generated from the declarations (the
/// `--config` flag first); `worker/tests/settings_table.rs` keeps the
/// README equal to it.
pub fn readme_table() -> String {
    let mut table = String::from(
        "| setting (flag / env) | default | meaning |\n|---|---|---|\n\
         | `--config` / `RUNFLEET_CONFIG` | none (serves `echo`) | the TOML file of these settings and the backend profiles this worker serves |\n",
    );
    for setting in super::DECLARED {
        let name = if setting.hidden {
            format!("`{}` (hidden)", setting.env)
        } else {
            format!("`--{}` / `{}`", setting.key.replace('_', "-"), setting.env)
        };
        let default = default_text(setting.key, setting.shown);
        table.push_str(&format!("| {name} | {default} | {} |\n", setting.meaning));
    }
    table
}
