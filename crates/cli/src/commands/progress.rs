//! What `sync --wait` shows while a full sync runs: a live bar on a terminal
//! (phase, objects done of the total, failures, objects per second), one line
//! per phase otherwise (logs, CI).

use entra_sync_store::runs::Run;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// The progress display of one full sync.
#[derive(Debug)]
pub enum Progress {
    /// A live bar, redrawn in place.
    Bar(ProgressBar),
    /// A line whenever the phase changes.
    Lines {
        /// The phase last printed.
        phase: Option<String>,
    },
}

impl Progress {
    /// A bar when stdout is a terminal, lines otherwise.
    pub fn new() -> Self {
        if !std::io::stdout().is_terminal() {
            return Self::Lines { phase: None };
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} objects, {per_sec} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self::Bar(bar)
    }

    /// Shows the run's state as last read.
    pub fn update(&mut self, run: &Run) {
        let finished = u64::try_from(run.objects_done + run.objects_failed).unwrap_or(0);
        match self {
            Self::Bar(bar) => {
                bar.set_length(u64::try_from(run.objects_total).unwrap_or(0));
                bar.set_position(finished);
                bar.set_message(format!("{}, {} failed", run.phase, run.objects_failed));
            }
            Self::Lines { phase } => {
                if phase.as_deref() != Some(run.phase.as_str()) {
                    println!("{}", line(run));
                    *phase = Some(run.phase.clone());
                }
            }
        }
    }

    /// Says something about the wait without breaking the bar (on stderr
    /// otherwise).
    pub fn note(&self, message: &str) {
        match self {
            Self::Bar(bar) => bar.println(message),
            Self::Lines { .. } => eprintln!("{message}"),
        }
    }

    /// Clears the bar before the final line is printed.
    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// `full sync <id>: phase users (120/400 objects done, 2 failed)`.
pub fn line(run: &Run) -> String {
    format!(
        "full sync {}: phase {} ({}/{} objects done, {} failed)",
        run.id, run.phase, run.objects_done, run.objects_total, run.objects_failed
    )
}
