//! `ringtape view RUN_DIR|DATA_DIR`: the viewer window over a run or bar files (minifb over
//! X11; the `window` feature, on by default). Without a display it says so in one line and
//! exits 2: `ringtape render` writes the same charts to a PNG.

use crate::exit::bad_input;
use crate::render::{Pick, load, scene};
use anyhow::Result;
use std::path::PathBuf;

/// `ringtape view` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run directory or a directory of bar files
    #[arg(value_name = "RUN_DIR|DATA_DIR")]
    pub path: PathBuf,
    #[command(flatten)]
    pub pick: Pick,
    /// Window width
    #[arg(long, default_value_t = 1280)]
    pub width: usize,
    /// Window height
    #[arg(long, default_value_t = 800)]
    pub height: usize,
    /// Close after this many frames (default with --screenshot: 30)
    #[arg(long)]
    pub frames: Option<u64>,
    /// Write the last frame to this PNG when the window closes (the framebuffer as drawn)
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<PathBuf>,
}

fn no_display(why: &str, a: &Args) -> anyhow::Error {
    bad_input(format!("no display ({why}): use ringtape render --data {} --out FILE.png", a.path.display()))
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        return Err(no_display("DISPLAY is not set", &args));
    }
    let mut pick = args.pick.clone();
    if pick.bars.is_none() && pick.from.is_none() && pick.to.is_none() {
        pick.bars = Some(300);
    }
    let s = scene(load(&args.path, &pick)?);
    show(s, &args)
}

#[cfg(feature = "window")]
fn show(s: viz::scene::Scene, a: &Args) -> Result<()> {
    let title = format!("ringtape view {}", a.path.display());
    let frames = a.frames.or(a.screenshot.as_ref().map(|_| 30));
    let opts = viz::window::RunOpts { max_frames: frames, screenshot: a.screenshot.as_deref() };
    viz::window::run(s, &title, a.width, a.height, opts).map_err(|e| match e {
        viz::window::WindowError::NoDisplay(why) => no_display(&why, a),
        other => anyhow::Error::new(other),
    })
}

#[cfg(not(feature = "window"))]
fn show(_s: viz::scene::Scene, a: &Args) -> Result<()> {
    Err(no_display("this ringtape was built without the window feature", a))
}
