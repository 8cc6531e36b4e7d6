//! Usage from the connectors themselves (contract 0.2.0 `usage`): before a dormant sweep,
//! every managed resource of a kind whose connector declares `usage` is read, and when
//! each subject last used it goes into state's usage records, beside any imported from a
//! file. A connector that fails is reported and skipped: the sweep still runs on what the
//! others and earlier imports said (unknown is never taken as unused).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::OpError;
use crate::host::Host;
use crate::model::UsageQuery;
use crate::state::{StateStore, UsageRecord};

/// Most pages read per resource: a connector whose cursor never ends cannot stall the
/// sweep.
const MAX_PAGES: usize = 100;

/// What one (app, kind, resource) reported.
#[derive(Debug, Clone, Serialize)]
pub struct UsageCollected {
    pub app: String,
    pub kind: String,
    pub resource: String,
    /// Subjects with a last-use time, now in state.
    pub records: usize,
    /// Why reading it failed or stopped early, if it did.
    pub problem: Option<String>,
}

/// Reads every managed resource's usage from connectors that declare it, into `store`.
pub async fn collect_usage(
    host: &Host,
    store: &dyn StateStore,
) -> Result<Vec<UsageCollected>, OpError> {
    let targets: BTreeSet<(String, String, String)> = store
        .managed()?
        .into_iter()
        .map(|m| (m.target.app, m.target.kind, m.target.resource))
        .collect();
    let mut collected = Vec::new();
    for (app, kind, resource) in targets {
        let Ok(info) = host.connector_info(&app).await else {
            continue;
        };
        if !info.capabilities_of(&kind).usage {
            continue;
        }
        let mut query = UsageQuery {
            kind: kind.clone(),
            resource: Some(resource.clone()),
            cursor: None,
        };
        let mut records = Vec::new();
        let mut problem = None;
        let mut seen = BTreeSet::new();
        for page in 1..=MAX_PAGES {
            match host.usage(&app, &query).await.result {
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
                Ok(found) => {
                    records.extend(found.records.into_iter().filter_map(|r| {
                        // Only what is about this resource, with a time: a record without
                        // one says nothing about use.
                        let at = r.last_active_at.and_then(|s| i64::try_from(s).ok())?;
                        let at: DateTime<Utc> = DateTime::from_timestamp(at, 0)?;
                        (r.entitlement.kind == kind && r.entitlement.resource == resource).then(
                            || UsageRecord {
                                app: app.clone(),
                                subject: r.subject.id,
                                kind: kind.clone(),
                                resource: resource.clone(),
                                last_used_at: at,
                            },
                        )
                    }));
                    match found.next_cursor {
                        None => break,
                        Some(_) if page == MAX_PAGES => {
                            problem = Some(format!(
                                "stopped after {MAX_PAGES} pages; the rest of the listing was not read"
                            ));
                        }
                        // A cursor seen before is a loop: what was read stands.
                        Some(cursor) if !seen.insert(cursor.clone()) => {
                            problem = Some(format!(
                                "the connector returned cursor {:?} a second time; stopped after page {page}",
                                crate::untrusted::Shown(
                                    &cursor.chars().take(80).collect::<String>()
                                )
                            ));
                            break;
                        }
                        Some(cursor) => query.cursor = Some(cursor),
                    }
                }
            }
        }
        store.import_usage(&records)?;
        if let Some(problem) = &problem {
            tracing::warn!(app, kind, resource, "usage not read: {problem}");
        }
        collected.push(UsageCollected {
            app,
            kind,
            resource,
            records: records.len(),
            problem,
        });
    }
    Ok(collected)
}
