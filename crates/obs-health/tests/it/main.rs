//! Integration tests of obs-health: one binary, one module per area.

mod scenarios;
