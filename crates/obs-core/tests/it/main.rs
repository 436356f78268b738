//! Integration tests of obs-core: the bus and the logger under normal and hostile conditions.

mod bus;
mod logger;
mod support;
