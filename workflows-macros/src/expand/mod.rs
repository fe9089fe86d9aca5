//! Code generation, from the checked models only.

pub(crate) mod event;
pub(crate) mod one_of;
pub(crate) mod workflow;
