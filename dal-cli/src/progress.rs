//! Progress bars on stderr for long work (backup, restore, copy): only when stderr is a
//! terminal and the output is not `--json`, so pipes, logs and scripts see none of it.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// One line per entity, its bar showing the phase at hand (rows, history, verify, …); the
/// next entity finishes the line and starts its own.
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
        if current.as_ref().is_none_or(|(e, _)| e != entity) {
            if let Some((done_entity, bar)) = current.take() {
                bar.finish_with_message(format!("{done_entity}: done"));
            }
            let bar = ProgressBar::new(0).with_style(spinner_style());
            bar.enable_steady_tick(Duration::from_millis(120));
            *current = Some((entity.to_owned(), bar));
        }
        if let Some((_, bar)) = current.as_ref() {
            let message = format!("{entity}: {phase}");
            if bar.message() != message {
                // A new phase of the same entity: the same line starts over.
                bar.set_style(match total {
                    Some(_) => bar_style(),
                    None => spinner_style(),
                });
                bar.set_message(message);
                bar.reset();
            }
            bar.set_length(total.unwrap_or(0));
            bar.set_position(done);
        }
    }

    /// Finishes the last bar.
    pub fn finish(&self) {
        if let Ok(mut current) = self.current.lock() {
            if let Some((entity, bar)) = current.take() {
                bar.finish_with_message(format!("{entity}: done"));
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
    ProgressStyle::with_template(
        "{msg:40} [{bar:30}] {human_pos}/{human_len} ({elapsed}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:40} {spinner} {human_pos} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}
