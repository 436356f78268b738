//! Integration tests of obs-health: one binary, one module per area.

mod alloc;
mod dedup;
mod logger;
mod robustness;
mod rules;
mod scenarios;
mod support;
