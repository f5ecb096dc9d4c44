//! Everything the user sees: plan rendering (a pure function of the [`Plan`]), progress
//! reporting driven by executor events, and error rendering (`error:`, `Caused by:`,
//! `hint:`). Data goes to stdout, everything else to stderr; colour only when asked for and
//! never needed to read the output.
//!
//! [`Plan`]: crate::planner::Plan

mod errors;
mod plan;
pub mod plan_json;
mod progress;
mod report;

pub use errors::render_error;
pub use plan::{reason_text, render_blockers, render_outcome, render_plan};
pub use progress::{ProgressReporter, Spinner};
pub use report::{render_destroy_report, render_outputs};

/// ANSI styling that can be switched off (`--no-color`, `NO_COLOR`, not a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// A duration as people read it: `850ms`, `12.3s`, `4m05s`.
pub fn human_duration(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        let seconds = duration.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}
