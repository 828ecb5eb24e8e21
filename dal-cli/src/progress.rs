//! Progress bars on stderr for long work (backup, restore, copy): only when stderr is a
//! terminal and the output is not `--json`, so pipes, logs and scripts see none of it.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// One bar per step (an entity in a phase); a new step finishes the previous bar.
pub struct Bars {
    enabled: bool,
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl Bars {
    /// Bars drawn only when stderr is a terminal and `json` is off.
    pub fn new(json: bool) -> Self {
        Bars {
            enabled: !json && std::io::stderr().is_terminal(),
            current: Mutex::new(None),
        }
    }

    /// `done` of `total` (unknown: a spinner with a count) for `phase` of `entity`.
    pub fn update(&self, entity: &str, phase: &str, done: u64, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        let step = format!("{phase} {entity}");
        let same = current.as_ref().is_some_and(|(s, _)| *s == step);
        if !same {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = match total {
                Some(n) => ProgressBar::new(n).with_style(bar_style()),
                None => ProgressBar::new_spinner().with_style(spinner_style()),
            };
            bar.set_message(step.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            *current = Some((step, bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            if let Some(n) = total {
                bar.set_length(n);
            }
            bar.set_position(done);
        }
    }

    /// Finishes the last bar.
    pub fn finish(&self) {
        if let Ok(mut current) = self.current.lock() {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        // On failure the bar is cleared, so `error: …` stands on its own line.
        if let Ok(mut current) = self.current.lock() {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:30} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg:30} {pos} rows ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}
