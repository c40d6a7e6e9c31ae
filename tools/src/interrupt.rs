//! Ctrl-C and SIGTERM: the first one sets a flag that long commands poll to stop cleanly (finish
//! or remove what they were writing, mark a run incomplete); a second one exits at once with the
//! conventional code 130.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide stop flag, with SIGINT and SIGTERM handlers installed on first use.
pub fn flag() -> &'static AtomicBool {
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // A second signal while the flag is already set terminates the process (130).
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&f));
            let _ = signal_hook::flag::register(sig, Arc::clone(&f));
        }
        f
    })
}

/// True once SIGINT or SIGTERM arrived (installs the handlers if needed).
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}
