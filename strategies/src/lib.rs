//! strategies

pub mod indicators;
