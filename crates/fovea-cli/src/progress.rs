//! Progress bars (indicatif) for the library's progress callbacks, and the Ctrl-C flag of
//! the data commands ([`fovea_cli_common::interrupt_flag`]).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use fovea_store::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A bar with rate and time left; hidden when stderr is not a terminal.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(unit: &str) -> Bar {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar { bar }
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.bar.set_length(total);
        self.bar.reset();
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A flag set by Ctrl-C (the first press asks the job to stop cleanly; a second one exits
/// with 130).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    fovea_cli_common::interrupt_flag("interrupting: finishing the current batch and cleaning up")
}
