//! Integration tests of obs-storage: the reader on damaged input, the writer's policies, the
//! crash test and property tests.

mod crash;
mod props;
mod ranks;
mod reader;
mod storage;
mod support;
