//! The one error type of the command line: a message for the user, never a Debug dump.

use std::fmt;

/// The exit code of every error (clap uses it for usage errors too).
pub(crate) const EXIT_ERROR: u8 = 2;

/// What went wrong, as a sentence for the user: what was being done, and why it failed.
#[derive(Debug)]
pub(crate) struct CliError(String);

impl CliError {
    /// An error with this message.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        CliError(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Adds what was being done to an error from a library.
pub(crate) trait Context<T> {
    /// Prefixes the error with `what` (`"reading logs in runs/a"`).
    fn context(self, what: impl FnOnce() -> String) -> Result<T, CliError>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, CliError> {
        self.map_err(|e| CliError(format!("{}: {e}", what())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_the_library_message() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let e = r.context(|| "writing report.html".to_owned()).unwrap_err();
        assert_eq!(e.to_string(), "writing report.html: disk on fire");
    }
}
