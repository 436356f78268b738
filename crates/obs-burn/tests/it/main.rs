//! Integration tests of obs-burn: real burn training, observed.

mod errors;
mod support;
mod training;
