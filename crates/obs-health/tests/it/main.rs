//! Integration tests of obs-health.
