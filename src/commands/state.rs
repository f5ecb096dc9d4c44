//! `comfyplat state list` / `state show ADDRESS`: read-only views of the state file.

use super::{CommandError, Exit, Session};
use crate::cli::{Global, StateCommand};
use crate::model::Address;
use crate::state::Status;

pub fn run(global: &Global, command: &StateCommand) -> anyhow::Result<Exit> {
    let session = Session::open(global)?;
    let state = session.load_state()?;
    match command {
        StateCommand::List => {
            if state.resources.is_empty() {
                eprintln!(
                    "The state of platform `{}` is empty ({}).",
                    state.platform,
                    session.state_path().display()
                );
            }
            for (address, entry) in &state.resources {
                let status = match entry.status {
                    Status::Applied => "applied",
                    Status::Creating => "creating (interrupted; the next apply finishes it)",
                };
                println!(
                    "{address}\t{}\t{}\t{status}",
                    entry.identity.kind().noun(),
                    entry.identity
                );
            }
        }
        StateCommand::Show { address } => {
            let Some(entry) = state.resources.get(&Address::new(address.clone())) else {
                return Err(CommandError::NoSuchAddress {
                    address: address.clone(),
                    known: state.resources.keys().map(|a| a.to_string()).collect(),
                }
                .into());
            };
            println!("{}", serde_json::to_string_pretty(entry)?);
        }
    }
    Ok(0)
}
