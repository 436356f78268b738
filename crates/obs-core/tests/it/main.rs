//! Integration tests of obs-core.
