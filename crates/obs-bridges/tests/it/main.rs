//! Integration tests of the bridges: our own decoders, the real TensorBoard and wandb tools,
//! replay of stored runs, and bounded memory on large runs.

mod common;
mod large;
mod odd;
mod realtools;
mod replay;
mod tensorboard;
mod wandb;
