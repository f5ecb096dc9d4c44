//! Progress while applying: one spinner per running change with its elapsed time and an
//! overall bar on a terminal (indicatif); one plain line per event otherwise (CI logs).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Style, human_duration};
use crate::executor::{Event, Reporter};
use crate::model::Address;
use crate::planner::Action;

fn doing(action: Action) -> &'static str {
    match action {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Replace => "replacing",
        Action::Delete => "destroying",
        Action::Adopt => "recording",
        Action::Forget => "forgetting",
        Action::Keep => "keeping",
    }
}

fn done(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "destroyed",
        Action::Adopt => "recorded",
        Action::Forget => "forgotten",
        Action::Keep => "kept",
    }
}

pub struct ProgressReporter {
    style: Style,
    quiet: bool,
    total: usize,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<HashMap<Address, ProgressBar>>,
}

impl ProgressReporter {
    /// Bars on a terminal stderr, lines otherwise, nothing but failures when `quiet`.
    pub fn new(total: usize, style: Style, quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix("applying");
            overall.enable_steady_tick(Duration::from_millis(200));
            Bars {
                multi,
                overall,
                running: Mutex::new(HashMap::new()),
            }
        });
        ProgressReporter {
            style,
            quiet,
            total,
            bars,
        }
    }

    /// How many changes the plan has.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Removes the bars (before printing the summary).
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.overall.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    fn take_bar(&self, address: &Address) {
        if let Some(bars) = &self.bars {
            let mut running = bars.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(bar) = running.remove(address) {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
            bars.overall.inc(1);
        }
    }
}

impl Reporter for ProgressReporter {
    fn event(&self, event: Event) {
        let style = self.style;
        match event {
            Event::Started { address, action } => {
                if self.quiet {
                    return;
                }
                match &self.bars {
                    Some(bars) => {
                        let bar = bars.multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.set_message(format!("{} {address}", doing(action)));
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bars.running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(address, bar);
                    }
                    None => self.line(format!("{address}: {}...", doing(action))),
                }
            }
            Event::Finished {
                address,
                action,
                elapsed,
            } => {
                self.take_bar(&address);
                if !self.quiet {
                    self.line(format!(
                        "{} {address}: {} ({})",
                        style.green("ok:"),
                        done(action),
                        human_duration(elapsed)
                    ));
                }
            }
            Event::Failed { address, error, .. } => {
                self.take_bar(&address);
                self.line(format!("{} {address}: {error}", style.red("failed:")));
            }
            Event::Skipped {
                address, because, ..
            } => {
                self.take_bar(&address);
                self.line(format!(
                    "{} {address}: waits for {because}",
                    style.yellow("skipped:")
                ));
            }
            Event::Progress { address, status } => match &self.bars {
                Some(bars) => {
                    let running = bars.running.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(bar) = running.get(&address) {
                        bar.set_message(format!("{address}: {status}"));
                    }
                }
                None if !self.quiet => self.line(format!("{address}: {status}")),
                None => {}
            },
            Event::Warning { address, message } => {
                self.line(format!("{} {address}: {message}", style.yellow("warning:")));
            }
            Event::Kept { address } => {
                self.take_bar(&address);
                if !self.quiet {
                    self.line(format!(
                        "{} {address}: holds objects, not deleted",
                        style.cyan("kept:")
                    ));
                }
            }
        }
    }
}

/// A spinner with elapsed time for a wait that has no steps (e.g. reading live state);
/// nothing when stderr is not a terminal or output is quiet. Cleared when dropped.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    pub fn start(message: &str, quiet: bool) -> Spinner {
        Spinner((!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(message.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
