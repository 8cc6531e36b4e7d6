//! Actions files (`portcullis apply ACTIONS.toml`): every action checked against its
//! connector before the first write, a dry run that stops there, and the run itself.

use std::path::Path;
use std::sync::Arc;

use super::OpError;
use crate::engine::{self, ActionsFile, Catalog, EngineOptions, Progress, RunError, RunReport};
use crate::host::Host;

fn refused(error: RunError) -> OpError {
    match error {
        blast @ RunError::BlastRadius { .. } => OpError::Refused(blast),
        invalid @ RunError::Invalid { .. } => OpError::Input(invalid.to_string()),
    }
}

/// Loads `path` and checks every action against its connector's `describe`, reporting
/// every problem at once ([`OpError::InvalidActions`]).
pub async fn check_actions(host: &Host, path: &Path) -> Result<ActionsFile, OpError> {
    let file = ActionsFile::load(path)?;
    let catalog = Catalog::describe(host, file.actions()).await;
    file.validate(&catalog)?;
    Ok(file)
}

/// Everything before the first write of a run (validation, the blast-radius guard).
pub async fn dry_run_actions(
    host: &Host,
    file: &ActionsFile,
    options: &EngineOptions,
) -> Result<(), OpError> {
    engine::preflight(host, file.actions(), options)
        .await
        .map(|_| ())
        .map_err(refused)
}

/// Runs a checked actions file through the engine. An actions file has no policy, so no
/// state is recorded; the audit trail has every action.
pub async fn run_actions(
    host: Arc<Host>,
    file: ActionsFile,
    run_id: &str,
    options: &EngineOptions,
    progress: Arc<dyn Progress>,
) -> Result<RunReport, OpError> {
    let report = engine::run(
        Arc::clone(&host),
        run_id,
        file.into_actions(),
        options,
        progress,
    )
    .await
    .map_err(refused);
    super::seal_run(&host, run_id);
    report
}
