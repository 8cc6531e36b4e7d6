//! AWS IAM connector: managed policies attached to IAM users and groups, over the IAM
//! Query API (`https://iam.amazonaws.com`, SigV4 region `us-east-1`, service `iam`; the
//! `region` and `service` settings override them for other partitions or emulators).
//!
//! Kinds `user-policy` (subject id = IAM user name) and `group-policy` (subject id = IAM
//! group name), resource = policy ARN, presence only. "PowerUser in the dev account" is
//! `arn:aws:iam::aws:policy/PowerUserAccess` attached in the dev account's app instance.
//! Secrets: `access-key-id`, `secret-access-key` (the host signs; the plugin never sees
//! them).
//! Must never: report `granted` for a policy that was already attached (IAM's attach
//! succeeds silently on a repeat), or turn "no such user" into `already-absent`.

mod list;
mod names;
mod query;
mod xml;

use portcullis_sdk::{
    Action, CheckReport, Connector, ConnectorInfo, Entitlement, EntitlementKind, Error,
    GrantOutcome, GrantPage, GrantQuery, KindCapabilities, Observed, Result, RevokeOutcome,
    Subject,
};

use crate::names::Kind;
use crate::xml::Xml;

struct AwsIam;

portcullis_sdk::export_connector!(AwsIam);

impl Connector for AwsIam {
    fn describe() -> ConnectorInfo {
        let kind = |kind: Kind, who: &str| EntitlementKind {
            name: kind.name().into(),
            description: format!(
                "A managed policy attached to an IAM {who}; subject id the {who} name, resource the policy ARN (arn:aws:iam::aws:policy/PowerUserAccess)."
            ),
            levels: Vec::new(),
            read_modify_write: false,
        };
        ConnectorInfo {
            name: "aws-iam".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "AWS IAM managed policies attached to users and groups.".into(),
            kinds: vec![kind(Kind::User, "user"), kind(Kind::Group, "group")],
            capabilities: vec![
                KindCapabilities::of(Kind::User.name()).list_grants(),
                KindCapabilities::of(Kind::Group.name()).list_grants(),
            ],
        }
    }

    fn check() -> Result<CheckReport> {
        match query::call("GetUser", &[]) {
            Ok(body) => {
                let xml = Xml::parse(&body)?;
                let user = xml.root();
                let arn = user.text("Arn").unwrap_or("an IAM user");
                Ok(CheckReport {
                    principal: match user.text("UserName") {
                        Some(name) => format!("{name} ({arn})"),
                        None => arn.to_owned(),
                    },
                    scopes: Vec::new(),
                    warnings: Vec::new(),
                })
            }
            // Role or federated credentials cannot call GetUser without a name; prove the
            // key works with a call any IAM reader may make.
            Err(Error::InvalidRequest(_)) => {
                let body = query::call("ListAccountAliases", &[])?;
                let xml = Xml::parse(&body)?;
                let alias = xml
                    .root()
                    .members("AccountAliases")
                    .first()
                    .and_then(|m| m.node_text())
                    .map(str::to_owned);
                Ok(CheckReport {
                    principal: match alias {
                        Some(alias) => format!("non-user credentials in account {alias}"),
                        None => "non-user credentials (account has no alias)".into(),
                    },
                    scopes: Vec::new(),
                    warnings: Vec::new(),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn grant(action: Action) -> Result<GrantOutcome> {
        let target = Target::of(&action.subject, &action.entitlement)?;
        // AttachUserPolicy answers 200 for an attached policy too: read first.
        if target.attached()? {
            return Ok(GrantOutcome::AlreadyPresent);
        }
        target.write("Attach")?;
        Ok(GrantOutcome::Granted)
    }

    fn revoke(action: Action) -> Result<RevokeOutcome> {
        let target = Target::of(&action.subject, &action.entitlement)?;
        match target.write("Detach") {
            Ok(()) => Ok(RevokeOutcome::Revoked),
            // NoSuchEntity names either the policy attachment (already gone) or the
            // principal (a mistake the operator must see): tell them apart.
            Err(e) if query::is_no_such_entity(&e) => {
                if target.principal_exists()? {
                    Ok(RevokeOutcome::AlreadyAbsent)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    fn verify(subject: Subject, entitlement: Entitlement) -> Result<Observed> {
        let target = Target::of(&subject, &entitlement)?;
        Ok(if target.attached()? {
            Observed::Present(None)
        } else {
            Observed::Absent
        })
    }

    fn list_grants(query: GrantQuery) -> Result<GrantPage> {
        list::page(query)
    }
}

/// One principal and one policy, validated.
struct Target {
    kind: Kind,
    principal: String,
    policy: String,
}

impl Target {
    fn of(subject: &Subject, entitlement: &Entitlement) -> Result<Target> {
        let kind = Kind::parse(&entitlement.kind)?;
        if let Some(level) = &entitlement.level {
            return Err(Error::invalid_request(format!(
                "{} is presence-only; drop the level {level:?}",
                kind.name()
            )));
        }
        Ok(Target {
            kind,
            principal: kind.principal(&subject.id)?,
            policy: names::policy_arn(&entitlement.resource)?,
        })
    }

    /// Whether the policy is attached, reading every page of `ListAttached*Policies`.
    fn attached(&self) -> Result<bool> {
        Ok(list::attached_policies(self.kind, &self.principal)?.contains(&self.policy))
    }

    /// `AttachUserPolicy`, `DetachGroupPolicy`, ...
    fn write(&self, verb: &str) -> Result<()> {
        let action = format!("{verb}{}Policy", self.kind.noun());
        query::call(
            &action,
            &[
                (self.kind.name_param(), &self.principal),
                ("PolicyArn", &self.policy),
            ],
        )
        .map(drop)
    }

    /// `GetUser` / `GetGroup`: false only on `NoSuchEntity`.
    fn principal_exists(&self) -> Result<bool> {
        let action = format!("Get{}", self.kind.noun());
        let mut params = vec![(self.kind.name_param(), self.principal.as_str())];
        if self.kind == Kind::Group {
            params.push(("MaxItems", "1")); // GetGroup also lists members; we need none
        }
        match query::call(&action, &params) {
            Ok(_) => Ok(true),
            Err(e) if query::is_no_such_entity(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
