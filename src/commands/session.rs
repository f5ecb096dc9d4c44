//! What every command that talks to AWS does first: read platform.yaml (refusing bad input
//! before any network call), find the state, connect, check the account, observe, plan.

use std::path::PathBuf;

use anyhow::Context;

use crate::adapters::Aws;
use crate::adapters::sts::{self, Caller};
use crate::cli::Global;
use crate::config::{self, Platform};
use crate::model::{self, Desired, Environment, Observed};
use crate::observe;
use crate::planner::{self, Options, Plan};
use crate::state::State;
use crate::state::lock::StateLock;

use super::CommandError;

pub struct Session {
    pub platform: Platform,
    pub state_dir: PathBuf,
    /// `--quiet`: no spinners.
    pub quiet: bool,
}

/// A session connected to an account that passed the guards.
pub struct Connected {
    pub aws: Aws,
    pub caller: Caller,
    pub environment: Environment,
}

impl Session {
    /// Reads and validates platform.yaml. No network.
    pub fn open(global: &Global) -> anyhow::Result<Session> {
        let platform = config::load(&global.file)?;
        let state_dir = global
            .state_dir
            .clone()
            .unwrap_or_else(|| platform.default_state_dir());
        Ok(Session {
            platform,
            state_dir,
            quiet: global.quiet,
        })
    }

    pub fn state_path(&self) -> PathBuf {
        self.platform.state_file(&self.state_dir)
    }

    pub fn lock(&self, operation: &str) -> anyhow::Result<StateLock> {
        let path = self.state_dir.join(format!("{}.lock", self.platform.name));
        Ok(StateLock::acquire(&path, operation)?)
    }

    pub fn load_state(&self) -> anyhow::Result<State> {
        Ok(State::load(
            &self.state_path(),
            &self.platform.name,
            &self.platform.region,
        )?)
    }

    /// Asks STS who the caller is and refuses any account other than the one named in
    /// platform.yaml or recorded in state.
    pub async fn connect(&self, state: &State) -> anyhow::Result<Connected> {
        let aws = Aws::connect(&self.platform.region).await;
        let caller = sts::caller(&aws).await?;
        if let Some(expected) = &self.platform.account
            && expected != &caller.account
        {
            return Err(CommandError::WrongAccount {
                expected: expected.clone(),
                actual: caller.account.clone(),
                arn: caller.arn.clone(),
            }
            .into());
        }
        if let Some(state_account) = &state.account
            && state_account != &caller.account
        {
            return Err(CommandError::StateAccountMismatch {
                platform: self.platform.name.clone(),
                state_account: state_account.clone(),
                actual: caller.account.clone(),
            }
            .into());
        }
        let environment = caller.environment(&self.platform.region);
        Ok(Connected {
            aws,
            caller,
            environment,
        })
    }

    pub fn desired(&self, connected: &Connected) -> Desired {
        model::desired(&self.platform, &connected.environment)
    }

    /// Observes everything the plan needs and plans.
    pub async fn plan(
        &self,
        connected: &Connected,
        state: &State,
        options: Options,
    ) -> anyhow::Result<(Desired, Observed, Plan)> {
        let desired = self.desired(connected);
        let identities = observe::identities(&desired, state);
        let _spinner = crate::ui::Spinner::start(
            &format!("reading the live state of {} resources", identities.len()),
            self.quiet,
        );
        let observed = observe::observe(&connected.aws, &desired, identities)
            .await
            .context("failed to read the live state of the platform")?;
        let plan = planner::plan(&desired, state, &observed, options, &connected.environment);
        Ok((desired, observed, plan))
    }
}
