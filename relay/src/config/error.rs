//! A setting refused: named by its variable (and its file key when a file was given), with
//! what it accepts.

use std::fmt;

/// A setting that cannot be used, named by its variable, and by its file key when a file was
/// given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    variable: String,
    message: String,
    file: bool,
}

impl ConfigError {
    pub(super) fn new(variable: impl Into<String>, message: impl Into<String>) -> Self {
        let (variable, message) = (variable.into(), message.into());
        Self {
            variable,
            message,
            file: false,
        }
    }

    /// Names the file key too if `file` (a file was given).
    pub(super) fn in_file(self, file: bool) -> Self {
        Self { file, ..self }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (variable, message) = (&self.variable, &self.message);
        if variable == "AIRUDDER_CONFIG" {
            return write!(f, "{variable} (--config): {message}");
        }
        if !self.file {
            return write!(f, "{variable}: {message}");
        }
        let key = super::sources::file_key(variable);
        write!(f, "{variable} ({key} in the file): {message}")
    }
}

impl std::error::Error for ConfigError {}

/// Why the command line was not taken: clap's own answer (help, a usage error), or a setting.
#[derive(Debug)]
pub(crate) enum Refused {
    Usage(clap::Error),
    Setting(ConfigError),
}

impl From<ConfigError> for Refused {
    fn from(err: ConfigError) -> Self {
        Self::Setting(err)
    }
}
