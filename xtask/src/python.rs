//! Provisioning of the Python tools that check our bridge files (owned by the bridges work).

use anyhow::Result;

/// Makes the Python checkers available to the tests, adding the environment variables the tests
/// read to `env`.
pub(crate) fn provision(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}
