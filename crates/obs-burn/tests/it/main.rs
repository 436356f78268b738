//! Integration tests of obs-burn: real burn training, observed.

mod support;
mod training;
