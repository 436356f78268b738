//! obs-candle integration tests: real candle training on the CPU device.

mod device;
mod dtypes;
mod errors;
mod support;
mod training;
