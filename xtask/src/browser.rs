//! Provisioning of headless Chromium for the dashboard's browser tests (owned by the dashboard
//! work).

use anyhow::Result;

/// Makes a headless browser available to the tests, adding the environment variables the tests
/// read to `env`.
pub(crate) fn provision(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}
