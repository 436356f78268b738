//! Integration tests of the bridges: our own decoders, the real TensorBoard and wandb tools,
//! replay of stored runs, and bounded memory on large runs.

mod common;
#[cfg(feature = "tensorboard")]
mod tensorboard;
#[cfg(feature = "wandb")]
mod wandb;
#[cfg(all(feature = "tensorboard", feature = "wandb"))]
mod realtools;
