//! Integration tests of obs-dashboard: the exporter on a real logger, the from-logs renderer,
//! escaping, and the page in a real headless browser.

mod browser;
mod compare;
mod exporter;
mod logs;
mod security;
mod support;
