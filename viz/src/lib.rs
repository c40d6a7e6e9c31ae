//! # ringtape viz
//!
//! Stage: an observer, off the pipeline. It draws bars, volume, the overlays a strategy declares
//! through [`engine::strategy::Strategy::plot`], fills and the position into a `u32` framebuffer
//! ([`canvas::Canvas`], 0RGB), which goes to the screen (module `window`, feature `window`, minifb
//! over X11) or to a PNG ([`png`]). It consumes bars and fills, produces pixels, and must never
//! make the pipeline wait or know a strategy by name.
//!
//! - [`font`]: the embedded 8x8 bitmap font; [`canvas`]: the framebuffer and primitives;
//! - [`model`]: a panel's data ([`model::SymbolChart`]) and its view window ([`model::View`]);
//! - [`chart`]: one panel; [`layout`]: 1, 2x2, 3x3; [`scene`]: panels, side panel, key actions;
//! - [`record`]: a strategy's overlays and fills from one inline pipeline run;
//! - [`live`]: what a running pipeline publishes for the window (never waiting) and the pacing
//!   of a replay; [`book`]: the window's picture of the orders and fills; [`livebars`]: a live
//!   run's bars and quotes from the journaled inputs; [`keymap`]: hotkeys to manual orders; [`status`]: the status bar; module
//!   `live_window` (feature `window`): the window over a running pipeline.
//!
//! ```
//! use engine::records::{Bar, PX_SCALE};
//! use viz::{canvas::Canvas, model::SymbolChart, scene::Scene};
//! let bars: Vec<Bar> = (0..50)
//!     .map(|i| {
//!         let px = (100 + i % 7) * PX_SCALE;
//!         Bar { ts_event_ns: i * 60_000_000_000, open_px_e9: px, high_px_e9: px + PX_SCALE, low_px_e9: px - PX_SCALE, close_px_e9: px + PX_SCALE / 2, volume: 10 }
//!     })
//!     .collect();
//! let scene = Scene::new(vec![SymbolChart::new("DEMO", 60, bars)], 500);
//! let mut canvas = Canvas::new(640, 360, 0);
//! let panels = scene.draw(&mut canvas);
//! assert_eq!(panels.len(), 1);
//! let png = viz::png::encode(&canvas).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod book;
pub mod canvas;
pub mod chart;
pub mod font;
pub mod keymap;
pub mod layout;
pub mod live;
#[cfg(feature = "window")]
pub mod live_window;
pub mod livebars;
pub mod model;
pub mod png;
pub mod record;
pub mod scene;
pub mod status;
pub mod theme;
pub mod timefmt;
#[cfg(feature = "window")]
pub mod window;
