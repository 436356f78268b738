//! Integration tests of obs-adaptive: each trigger, escalation and cooldown, de-duplication,
//! hostile input, and the scenario suite on a real network.

mod escalation;
mod hostile;
mod scenarios;
mod support;
mod triggers;
