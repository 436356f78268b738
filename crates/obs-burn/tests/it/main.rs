//! Integration tests of obs-burn: real burn training, observed.

mod errors;
mod policy;
mod support;
mod training;
