//! Calls into a plugin, whatever contract version it was built for: the pre-linked
//! component ([`PluginPre`]), a fresh instance of it ([`Instance`]) and its exports
//! ([`Guest`]), each an enum over the versions in [`crate::bindings`]. The host's model
//! types go in and come out; the conversions to and from each version's generated types
//! are here, generated once per version by `conversions!` (the versions share these
//! types field for field) plus what a version adds.
//!
//! A 0.1.0 plugin has no `set-level` or `usage`: those answer `unsupported`, and its
//! `describe` reports list-grants for every kind and nothing else.
//!
//! Must never: let a plugin string into the host unscrubbed or unbounded (every inbound
//! string goes through `inbound`), or convert an oversized page before refusing it.

use wasmtime::Store;

use crate::bindings::{v0_1, v0_2};
use crate::model::{
    Action, CheckReport, ConnectorError, ConnectorInfo, Entitlement, EntitlementKind, Grant,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, RevokeOutcome,
    SetLevelOutcome, Subject, UsagePage, UsageQuery, UsageRecord,
};
use crate::sandbox::CallState;
use crate::untrusted::{bound, bound_list, caps};

/// A string from a plugin as the host keeps it: every loaded secret scrubbed (before the
/// cut, so no part of one survives it), then bounded to `max` bytes.
fn inbound(text: String, max: usize) -> String {
    bound(crate::redact::scrubbed(text), max)
}

/// Contract versions this host loads, newest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V0_1,
    V0_2,
}

impl Version {
    /// `0.1.0`, as the WIT package states it.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1 => "0.1.0",
            Version::V0_2 => "0.2.0",
        }
    }

    /// The `@0.N.` prefix every interface of this version (any patch) carries.
    pub fn interface_prefix(self) -> &'static str {
        match self {
            Version::V0_1 => "@0.1.",
            Version::V0_2 => "@0.2.",
        }
    }

    pub const ALL: [Version; 2] = [Version::V0_1, Version::V0_2];
}

/// A plugin compiled and linked against one contract version.
#[doc(hidden)]
pub enum PluginPre {
    V0_1(v0_1::PluginPre<CallState>),
    V0_2(v0_2::PluginPre<CallState>),
}

impl PluginPre {
    /// Links `pre` as the world of `version`.
    pub fn new(
        version: Version,
        pre: wasmtime::component::InstancePre<CallState>,
    ) -> wasmtime::Result<PluginPre> {
        Ok(match version {
            Version::V0_1 => PluginPre::V0_1(v0_1::PluginPre::new(pre)?),
            Version::V0_2 => PluginPre::V0_2(v0_2::PluginPre::new(pre)?),
        })
    }

    pub async fn instantiate_async(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            PluginPre::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            PluginPre::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

/// A fresh instance of a plugin.
#[doc(hidden)]
pub enum Instance {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
}

impl Instance {
    pub fn guest(&self) -> Guest<'_> {
        match self {
            Instance::V0_1(i) => Guest::V0_1(i.portcullis_connector_connector()),
            Instance::V0_2(i) => Guest::V0_2(i.portcullis_connector_connector()),
        }
    }
}

/// The connector exports of one instance.
#[derive(Clone, Copy)]
#[doc(hidden)]
pub enum Guest<'a> {
    V0_1(&'a v0_1::guest::Guest),
    V0_2(&'a v0_2::guest::Guest),
}

type Answer<T> = wasmtime::Result<Result<T, ConnectorError>>;

impl Guest<'_> {
    pub async fn describe(self, store: &mut Store<CallState>) -> wasmtime::Result<ConnectorInfo> {
        Ok(match self {
            Guest::V0_1(g) => g.call_describe(store).await?.into(),
            Guest::V0_2(g) => g.call_describe(store).await?.into(),
        })
    }

    pub async fn check(self, store: &mut Store<CallState>) -> Answer<CheckReport> {
        Ok(match self {
            Guest::V0_1(g) => g
                .call_check(store)
                .await?
                .map(Into::into)
                .map_err(Into::into),
            Guest::V0_2(g) => g
                .call_check(store)
                .await?
                .map(Into::into)
                .map_err(Into::into),
        })
    }

    pub async fn grant(
        self,
        store: &mut Store<CallState>,
        action: &Action,
    ) -> Answer<GrantOutcome> {
        Ok(match self {
            Guest::V0_1(g) => g
                .call_grant(store, &action.into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
            Guest::V0_2(g) => g
                .call_grant(store, &action.into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
        })
    }

    pub async fn revoke(
        self,
        store: &mut Store<CallState>,
        action: &Action,
    ) -> Answer<RevokeOutcome> {
        Ok(match self {
            Guest::V0_1(g) => g
                .call_revoke(store, &action.into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
            Guest::V0_2(g) => g
                .call_revoke(store, &action.into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
        })
    }

    pub async fn verify(
        self,
        store: &mut Store<CallState>,
        subject: &Subject,
        entitlement: &Entitlement,
    ) -> Answer<Observed> {
        Ok(match self {
            Guest::V0_1(g) => g
                .call_verify(store, &subject.into(), &entitlement.into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
            Guest::V0_2(g) => g
                .call_verify(store, &subject.into(), &entitlement.into())
                .await?
                .map(Into::into)
                .map_err(Into::into),
        })
    }

    /// One page; `Ok(Err(reason))` when the page breaks the host's caps.
    pub async fn list_grants(
        self,
        store: &mut Store<CallState>,
        query: &GrantQuery,
    ) -> Answer<Result<GrantPage, String>> {
        Ok(match self {
            Guest::V0_1(g) => g
                .call_list_grants(store, &query.into())
                .await?
                .map(v0_1_types::checked_page)
                .map_err(Into::into),
            Guest::V0_2(g) => g
                .call_list_grants(store, &query.into())
                .await?
                .map(v0_2_types::checked_page)
                .map_err(Into::into),
        })
    }

    pub async fn set_level(
        self,
        store: &mut Store<CallState>,
        action: &Action,
    ) -> Answer<SetLevelOutcome> {
        match self {
            Guest::V0_1(_) => Ok(Err(ConnectorError::Unsupported(
                "the plugin is built for contract 0.1.0, which has no set-level".into(),
            ))),
            Guest::V0_2(g) => Ok(g
                .call_set_level(store, &action.into())
                .await?
                .map(Into::into)
                .map_err(Into::into)),
        }
    }

    /// One page of usage; `Ok(Err(reason))` when the page breaks the host's caps.
    pub async fn usage(
        self,
        store: &mut Store<CallState>,
        query: &UsageQuery,
    ) -> Answer<Result<UsagePage, String>> {
        match self {
            Guest::V0_1(_) => Ok(Err(ConnectorError::Unsupported(
                "the plugin is built for contract 0.1.0, which has no usage export".into(),
            ))),
            Guest::V0_2(g) => Ok(g
                .call_usage(store, &query.into())
                .await?
                .map(v0_2_usage::checked_usage)
                .map_err(Into::into)),
        }
    }
}

/// A page is refused, before any of it is converted, when it holds more than
/// [`caps::GRANTS_PER_PAGE`] items or a cursor over [`caps::CURSOR_BYTES`] (a cursor
/// that grows every page is a loop in disguise).
fn page_problem(items: usize, what: &str, cursor: Option<&String>) -> Option<String> {
    if items > caps::GRANTS_PER_PAGE {
        return Some(format!(
            "the plugin returned {items} {what} on one page, over the host's cap of {}; the page was refused (the connector must page its listing)",
            caps::GRANTS_PER_PAGE
        ));
    }
    if let Some(cursor) = cursor
        && cursor.len() > caps::CURSOR_BYTES
    {
        return Some(format!(
            "the plugin returned a {}-byte cursor, over the host's cap of {} bytes; the page was refused (a cursor that grows every page is a loop)",
            cursor.len(),
            caps::CURSOR_BYTES
        ));
    }
    None
}

/// The conversions every version shares, for the version's `types` module `$wit`.
macro_rules! conversions {
    ($module:ident, $wit:path) => {
        mod $module {
            use super::*;
            use $wit as wit;

            impl From<&Subject> for wit::Subject {
                fn from(s: &Subject) -> Self {
                    wit::Subject {
                        id: s.id.clone(),
                        email: s.email.clone(),
                    }
                }
            }

            impl From<wit::Subject> for Subject {
                fn from(s: wit::Subject) -> Self {
                    Subject {
                        id: inbound(s.id, caps::ID_BYTES),
                        email: s.email.map(|e| inbound(e, caps::ID_BYTES)),
                    }
                }
            }

            impl From<&Entitlement> for wit::Entitlement {
                fn from(e: &Entitlement) -> Self {
                    wit::Entitlement {
                        kind: e.kind.clone(),
                        resource: e.resource.clone(),
                        level: e.level.clone(),
                    }
                }
            }

            impl From<wit::Entitlement> for Entitlement {
                fn from(e: wit::Entitlement) -> Self {
                    Entitlement {
                        kind: inbound(e.kind, caps::ID_BYTES),
                        resource: inbound(e.resource, caps::ID_BYTES),
                        level: e.level.map(|l| inbound(l, caps::ID_BYTES)),
                    }
                }
            }

            impl From<&Action> for wit::Action {
                fn from(a: &Action) -> Self {
                    wit::Action {
                        subject: (&a.subject).into(),
                        entitlement: (&a.entitlement).into(),
                        idempotency_key: a.idempotency_key.clone(),
                        reason: a.reason.clone(),
                    }
                }
            }

            pub(super) fn kinds(kinds: Vec<wit::EntitlementKind>) -> Vec<EntitlementKind> {
                kinds
                    .into_iter()
                    .map(|k| EntitlementKind {
                        name: k.name,
                        description: k.description,
                        levels: k.levels,
                        read_modify_write: k.read_modify_write,
                    })
                    .collect()
            }

            impl From<wit::CheckReport> for CheckReport {
                fn from(r: wit::CheckReport) -> Self {
                    let scrub_all = |items: Vec<String>| {
                        items.into_iter().map(crate::redact::scrubbed).collect()
                    };
                    CheckReport {
                        principal: inbound(r.principal, caps::MESSAGE_BYTES),
                        scopes: bound_list(scrub_all(r.scopes), caps::LIST_ITEMS, caps::ID_BYTES),
                        warnings: bound_list(
                            scrub_all(r.warnings),
                            caps::LIST_ITEMS,
                            caps::MESSAGE_BYTES,
                        ),
                    }
                }
            }

            impl From<wit::GrantOutcome> for GrantOutcome {
                fn from(o: wit::GrantOutcome) -> Self {
                    match o {
                        wit::GrantOutcome::Granted => GrantOutcome::Granted,
                        wit::GrantOutcome::AlreadyPresent => GrantOutcome::AlreadyPresent,
                        wit::GrantOutcome::Pending(detail) => GrantOutcome::Pending {
                            detail: inbound(detail, caps::MESSAGE_BYTES),
                        },
                    }
                }
            }

            impl From<wit::RevokeOutcome> for RevokeOutcome {
                fn from(o: wit::RevokeOutcome) -> Self {
                    match o {
                        wit::RevokeOutcome::Revoked => RevokeOutcome::Revoked,
                        wit::RevokeOutcome::AlreadyAbsent => RevokeOutcome::AlreadyAbsent,
                    }
                }
            }

            impl From<wit::Observed> for Observed {
                fn from(o: wit::Observed) -> Self {
                    match o {
                        wit::Observed::Present(level) => Observed::Present {
                            level: level.map(|l| inbound(l, caps::ID_BYTES)),
                        },
                        wit::Observed::Absent => Observed::Absent,
                        wit::Observed::Pending(level) => Observed::Pending {
                            level: level.map(|l| inbound(l, caps::ID_BYTES)),
                        },
                    }
                }
            }

            impl From<&GrantQuery> for wit::GrantQuery {
                fn from(q: &GrantQuery) -> Self {
                    wit::GrantQuery {
                        kind: q.kind.clone(),
                        resource: q.resource.clone(),
                        cursor: q.cursor.clone(),
                    }
                }
            }

            pub(super) fn checked_page(page: wit::GrantPage) -> Result<GrantPage, String> {
                if let Some(problem) =
                    page_problem(page.grants.len(), "grants", page.next_cursor.as_ref())
                {
                    return Err(problem);
                }
                Ok(GrantPage {
                    grants: page
                        .grants
                        .into_iter()
                        .map(|g| Grant {
                            subject: g.subject.into(),
                            entitlement: g.entitlement.into(),
                            pending: g.pending,
                            last_used_at: g.last_used_at,
                        })
                        .collect(),
                    next_cursor: page.next_cursor,
                })
            }

            impl From<wit::ConnectorError> for ConnectorError {
                fn from(e: wit::ConnectorError) -> Self {
                    let m = |message: String| inbound(message, caps::MESSAGE_BYTES);
                    match e {
                        wit::ConnectorError::InvalidRequest(e) => {
                            ConnectorError::InvalidRequest(m(e))
                        }
                        wit::ConnectorError::NotFound(e) => ConnectorError::NotFound(m(e)),
                        wit::ConnectorError::Unauthorized(e) => ConnectorError::Unauthorized(m(e)),
                        wit::ConnectorError::RateLimited(r) => ConnectorError::RateLimited {
                            retry_after_ms: r.retry_after_ms,
                            message: m(r.message),
                        },
                        wit::ConnectorError::Transient(e) => ConnectorError::Transient(m(e)),
                        wit::ConnectorError::Unsupported(e) => ConnectorError::Unsupported(m(e)),
                    }
                }
            }
        }
    };
}

conversions!(v0_1_types, crate::bindings::v0_1::types);
conversions!(v0_2_types, crate::bindings::v0_2::types);

// ---- what 0.1.0 lacks ----

impl From<v0_1::types::ConnectorInfo> for ConnectorInfo {
    fn from(i: v0_1::types::ConnectorInfo) -> Self {
        let kinds = v0_1_types::kinds(i.kinds);
        // 0.1.0 always exported list-grants (it may answer unsupported); nothing else.
        let capabilities = kinds
            .iter()
            .map(|k| KindCapabilities {
                kind: k.name.clone(),
                list_grants: true,
                set_level: false,
                usage: false,
            })
            .collect();
        ConnectorInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            kinds,
            capabilities,
        }
    }
}

// ---- what 0.2.0 adds ----

impl From<v0_2::types::ConnectorInfo> for ConnectorInfo {
    fn from(i: v0_2::types::ConnectorInfo) -> Self {
        ConnectorInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            kinds: v0_2_types::kinds(i.kinds),
            capabilities: i
                .capabilities
                .into_iter()
                .map(|c| KindCapabilities {
                    kind: c.kind,
                    list_grants: c.list_grants,
                    set_level: c.set_level,
                    usage: c.usage,
                })
                .collect(),
        }
    }
}

impl From<v0_2::types::SetLevelOutcome> for SetLevelOutcome {
    fn from(o: v0_2::types::SetLevelOutcome) -> Self {
        match o {
            v0_2::types::SetLevelOutcome::Changed => SetLevelOutcome::Changed,
            v0_2::types::SetLevelOutcome::AlreadyAtLevel => SetLevelOutcome::AlreadyAtLevel,
            v0_2::types::SetLevelOutcome::Pending(detail) => SetLevelOutcome::Pending {
                detail: inbound(detail, caps::MESSAGE_BYTES),
            },
        }
    }
}

impl From<&UsageQuery> for v0_2::types::UsageQuery {
    fn from(q: &UsageQuery) -> Self {
        v0_2::types::UsageQuery {
            kind: q.kind.clone(),
            resource: q.resource.clone(),
            cursor: q.cursor.clone(),
        }
    }
}

mod v0_2_usage {
    use super::*;

    pub(super) fn checked_usage(page: v0_2::types::UsagePage) -> Result<UsagePage, String> {
        if let Some(problem) = page_problem(
            page.records.len(),
            "usage records",
            page.next_cursor.as_ref(),
        ) {
            return Err(problem);
        }
        Ok(UsagePage {
            records: page
                .records
                .into_iter()
                .map(|r| UsageRecord {
                    subject: r.subject.into(),
                    entitlement: r.entitlement.into(),
                    last_active_at: r.last_active_at,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }
}
