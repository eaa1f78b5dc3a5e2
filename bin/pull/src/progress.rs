//! Per-layer progress bars on stderr, drawn only when stderr is a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use berth_reference::Digest;
use berth_registry::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars keyed by blob digest.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    style: ProgressStyle,
}

impl Bars {
    /// Bars on stderr, or `None` when stderr is not a terminal or `quiet` is set.
    pub fn new(quiet: bool) -> Option<Bars> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let style = ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
        Some(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            style,
        })
    }
}

impl Bars {
    /// Removes the bars of the image just pulled, so the result line starts clean.
    pub fn clear(&self) {
        let _ = self.multi.clear();
        self.bars.lock().expect("bars").clear();
    }
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, size: u64, offset: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(self.style.clone());
        bar.set_prefix(digest.short().to_string());
        bar.set_position(offset);
        if offset > 0 {
            bar.set_message("resumed");
        }
        self.bars.lock().expect("bars").insert(digest.clone(), bar);
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        if let Some(b) = self.bars.lock().expect("bars").get(digest) {
            b.inc(bytes);
        }
    }

    fn position(&self, digest: &Digest, offset: u64) {
        if let Some(b) = self.bars.lock().expect("bars").get(digest) {
            b.set_position(offset);
        }
    }

    fn done(&self, digest: &Digest, fetched: bool) {
        if let Some(b) = self.bars.lock().expect("bars").get(digest) {
            b.finish_with_message(if fetched { "done" } else { "present" });
        }
    }
}
