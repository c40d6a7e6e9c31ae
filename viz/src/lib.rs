//! # ringtape viz (placeholder: the viewer issue builds this crate)
//!
//! Stage: an observer. The viewer will draw candlesticks, volume and indicators into a `u32`
//! framebuffer (minifb on screen, PNG headless) from snapshots the pipeline publishes at frame
//! rate, and turn hotkeys into control events for the sequencer. It must never make the pipeline
//! wait: snapshots are handed off lock-free and stale frames are dropped and counted.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
