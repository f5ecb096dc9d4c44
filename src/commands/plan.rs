//! `comfyplat plan`: observe, plan, print. Writes nothing anywhere (except the plan file the
//! user names with `--out`).

use std::io::IsTerminal;

use super::{CommandError, Exit, Session};
use crate::cli::{Global, PlanArgs};
use crate::planner::{Mode, Options};
use crate::state::plan_file;
use crate::ui::{Style, plan_json, render_blockers, render_plan};

pub async fn run(global: &Global, args: &PlanArgs, style: Style) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let mut state = session.load_state()?;
    super::warn_if_state_is_readable(&session, style);
    let mode = if args.destroy {
        Mode::Destroy
    } else {
        Mode::Apply
    };
    let connected = session
        .connect(&state, mode, super::session::KubeOptions::default())
        .await?;
    let options = Options {
        mode,
        delete_data: args.delete_data,
        adopt: args.adopt,
    };
    let (_, _, plan) = session.plan(&connected, &mut state, options).await?;
    if args.json {
        let json = plan_json::render_plan_json(&plan);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", render_plan(&plan, stdout_style(style)));
    }
    eprint!("{}", render_blockers(&plan, style));
    if !plan.blockers.is_empty() {
        return Err(CommandError::Blocked {
            count: plan.blockers.len(),
        }
        .into());
    }
    if let Some(path) = &args.out {
        plan_file::write(path, &plan)?;
        eprintln!(
            "Saved the plan to {}; apply exactly this plan with `comfyplat apply {}`.",
            path.display(),
            path.display()
        );
    } else if plan.has_changes() && !args.json && !global.quiet {
        eprintln!(
            "\nNote: this plan was not saved (`--out FILE`), so a later `comfyplat apply` plans again and may do something else if things change in between."
        );
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// Colour for what goes to stdout: only on a terminal.
pub fn stdout_style(style: Style) -> Style {
    Style {
        color: style.color && std::io::stdout().is_terminal(),
    }
}
