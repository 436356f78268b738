//! Integration tests: each scenario's numbers, the observer contract, determinism.

mod observers;
mod scenarios;
