//! Google Drive connector: sharing files and folders with users through the Drive API v3
//! (`https://www.googleapis.com`).
//!
//! Kind `file` (files and folders alike), resource = the file id, subject = the user's
//! e-mail (`subject.email`, else `subject.id`), levels reader < commenter < writer <
//! fileOrganizer < organizer. The `token` secret is an OAuth access token with the
//! `drive` scope, injected by the host; minting it (from a service account with
//! domain-wide delegation, or a refresh token) is outside this connector.
//! Permission edits on one file are last-write-wins, so the kind is read-modify-write
//! and the host serialises writes per file.
//! Must never: write when a read shows the user already holds the role or higher (a
//! create on an existing user replaces the role, and can lower it), or grant `owner`.

mod api;
mod paging;
mod roles;

use portcullis_sdk::http::Method;
use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error, Grant,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    SetLevelOutcome, Subject, config,
};
use serde::Deserialize;

use crate::api::FileId;

const KIND: &str = "file";

struct Drive;

portcullis_sdk::export_connector!(Drive);

impl Connector for Drive {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "gdrive".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Google Drive sharing: user permissions on files and folders.".into(),
            kinds: vec![EntitlementKind {
                name: KIND.into(),
                description: "A user's role on a Drive file or folder; resource the file id, subject the user's e-mail. The owner reads back as organizer and cannot be revoked.".into(),
                levels: roles::LEVELS.iter().map(|l| (*l).to_owned()).collect(),
                read_modify_write: true,
            }],
            capabilities: vec![KindCapabilities::of(KIND).list_grants().set_level()],
        }
    }

    fn check() -> Result<CheckReport> {
        #[derive(Deserialize)]
        struct About {
            user: User,
        }
        #[derive(Deserialize)]
        struct User {
            #[serde(rename = "emailAddress", default)]
            email: String,
            #[serde(rename = "displayName", default)]
            name: String,
        }
        let request =
            api::request(Method::Get, &config::url("/drive/v3/about")).query("fields", "user");
        let about: About = api::send(request)?.json()?;
        Ok(CheckReport {
            principal: format!("{} <{}>", about.user.name, about.user.email),
            scopes: Vec::new(),
            warnings: vec![
                "Drive does not report a token's scopes; it needs https://www.googleapis.com/auth/drive to share files".into(),
            ],
        })
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let (file, email) = target(&action.subject, &action.entitlement)?;
        let role = roles::requested(action.entitlement.level.as_deref())?;
        let body = match api::find_user(&file, &email)? {
            Some(held) if roles::holds(&held.role, role) => {
                return Ok(GrantOutcome::AlreadyPresent);
            }
            Some(held) => {
                let id = permission_id(&held)?;
                let url = file.url(&format!("/permissions/{id}"));
                let request = api::request(Method::Patch, &url)
                    .query("supportsAllDrives", "true")
                    .json(&serde_json::json!({ "role": role }));
                return api::send(request)
                    .map(|_| GrantOutcome::Granted)
                    .map_err(|e| refused(e, &file, &email, role));
            }
            None => serde_json::json!({ "type": "user", "role": role, "emailAddress": email }),
        };
        let request = api::request(Method::Post, &file.url("/permissions"))
            .query("sendNotificationEmail", "false")
            .query("supportsAllDrives", "true")
            .json(&body);
        api::send(request).map_err(|e| refused(e, &file, &email, role))?;
        Ok(GrantOutcome::Granted)
    }

    /// A role changed in place, up or down: `PATCH .../permissions/{id}` with the new
    /// role, never a delete and a new share (which would notify the person again).
    fn set_level(action: Action) -> Result<SetLevelOutcome> {
        let (file, email) = target(&action.subject, &action.entitlement)?;
        let role = roles::requested(action.entitlement.level.as_deref())?;
        let Some(held) = api::find_user(&file, &email)? else {
            return Err(Error::not_found(format!(
                "{email} holds no role on Drive file {}; set-level changes a held role, grant it instead",
                file.as_str()
            )));
        };
        if held.role == role {
            return Ok(SetLevelOutcome::AlreadyAtLevel);
        }
        if held.role == roles::OWNER {
            return Err(Error::invalid_request(format!(
                "{email} owns Drive file {}; an owner's role cannot be changed: transfer ownership in Drive first",
                file.as_str()
            )));
        }
        let url = file.url(&format!("/permissions/{}", permission_id(&held)?));
        let request = api::request(Method::Patch, &url)
            .query("supportsAllDrives", "true")
            .json(&serde_json::json!({ "role": role }));
        api::send(request).map_err(|e| refused(e, &file, &email, role))?;
        Ok(SetLevelOutcome::Changed)
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let (file, email) = target(&action.subject, &action.entitlement)?;
        let Some(held) = api::find_user(&file, &email)? else {
            return Ok(RevokeOutcome::AlreadyAbsent);
        };
        if held.role == roles::OWNER {
            return Err(Error::invalid_request(format!(
                "{email} owns Drive file {}; an owner cannot be removed: transfer ownership in Drive first",
                file.as_str()
            )));
        }
        let url = file.url(&format!("/permissions/{}", permission_id(&held)?));
        match api::send(api::request(Method::Delete, &url).query("supportsAllDrives", "true")) {
            Ok(_) => Ok(RevokeOutcome::Revoked),
            // Removed by someone else between our read and our delete.
            Err(Error::NotFound(_)) => Ok(RevokeOutcome::AlreadyAbsent),
            Err(e) => Err(e),
        }
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let (file, email) = target(&subject, &entitlement)?;
        Ok(match api::find_user(&file, &email)? {
            Some(held) => Observed::Present(Some(roles::as_level(&held.role))),
            None => Observed::Absent,
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        check_kind(&query.kind)?;
        let resource = query.resource.ok_or_else(|| {
            Error::invalid_request("the Drive connector lists the permissions of one file: pass the file id as the resource")
        })?;
        let file = FileId::parse(&resource)?;
        if let Some(cursor) = query.cursor.as_deref().filter(|c| !api::is_page_token(c)) {
            return Err(Error::invalid_request(format!(
                "cursor {:?} is not a Drive page token; restart listing without a cursor",
                cursor.chars().take(100).collect::<String>()
            )));
        }
        let (items, next) = api::permissions_page(&file, query.cursor.as_deref())?;
        // A next token equal to the cursor would send the host back to this same page.
        let next = paging::next_cursor(&file, query.cursor.as_deref(), next)?;
        let grants = items
            .into_iter()
            .filter(|p| p.kind == "user")
            .filter_map(|p| {
                let email = p.email?;
                Some(Grant {
                    subject: Subject {
                        id: email.clone(),
                        email: Some(email),
                    },
                    entitlement: Entitlement {
                        kind: KIND.into(),
                        resource: resource.clone(),
                        level: Some(roles::as_level(&p.role)),
                    },
                    pending: false,
                    last_used_at: None,
                })
            })
            .collect();
        Ok(GrantPage {
            grants,
            next_cursor: next,
        })
    }
}

fn check_kind(kind: &str) -> Result<()> {
    if kind == KIND {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "the Drive connector manages kind {KIND:?}, not {kind:?}"
        )))
    }
}

/// The validated file and e-mail an action is about.
fn target(subject: &Subject, entitlement: &Entitlement) -> Result<(FileId, String)> {
    check_kind(&entitlement.kind)?;
    Ok((
        FileId::parse(&entitlement.resource)?,
        api::email(&subject.id, subject.email.as_deref())?,
    ))
}

/// A permission id from Drive, checked before it goes into a URL path.
fn permission_id(p: &api::Permission) -> Result<&str> {
    if api::is_token(&p.id) {
        Ok(&p.id)
    } else {
        Err(Error::transient(format!(
            "Drive returned a malformed permission id {:?}",
            p.id.chars().take(64).collect::<String>()
        )))
    }
}

/// Adds who and what to a refused write.
fn refused(e: Error, file: &FileId, email: &str, role: &str) -> Error {
    match e {
        Error::InvalidRequest(m) => Error::invalid_request(format!(
            "Drive refused to give {email} {role} on {}: {m}",
            file.as_str()
        )),
        other => api::about_file(other, file),
    }
}
