//! GitHub's JSON shapes: simple users, collaborators, repositories, invitations.
//!
//! Field names and nesting follow api.github.com (REST API version 2022-11-28); URLs in
//! bodies point at the simulator, `html_url`s at github.com as the real API does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::state::{Account, AccountKind, Invitation, Repo, Role, World};

/// A legacy global node id (`base64("04:User583231")`), which GitHub still accepts.
fn node_id(kind: &str, id: u64) -> String {
    let tag = match kind {
        "User" => "04",
        "Organization" => "012",
        "Repository" => "010",
        _ => "020",
    };
    STANDARD.encode(format!("{tag}:{kind}{id}"))
}

fn kind_name(account: &Account) -> &'static str {
    match account.kind {
        AccountKind::User => "User",
        AccountKind::Organization => "Organization",
    }
}

/// GitHub's "simple user" object.
pub fn simple_user(world: &World, account: &Account) -> Value {
    let base = &world.base_url;
    let login = &account.login;
    let path = match account.kind {
        AccountKind::User => "users",
        AccountKind::Organization => "orgs",
    };
    json!({
        "login": login,
        "id": account.id,
        "node_id": node_id(kind_name(account), account.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", account.id),
        "gravatar_id": "",
        "url": format!("{base}/{path}/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "repos_url": format!("{base}/{path}/{login}/repos"),
        "type": kind_name(account),
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// The full user of `GET /user` and `GET /users/{login}`.
pub fn full_user(world: &World, account: &Account) -> Value {
    let mut user = simple_user(world, account);
    if let Value::Object(fields) = &mut user {
        for (key, value) in [
            ("name", Value::Null),
            ("company", Value::Null),
            ("blog", json!("")),
            ("location", Value::Null),
            ("email", Value::Null),
            ("hireable", Value::Null),
            ("bio", Value::Null),
            ("public_repos", json!(0)),
            ("followers", json!(0)),
            ("following", json!(0)),
            ("created_at", json!(account.created_at)),
            ("updated_at", json!(account.created_at)),
        ] {
            fields.insert(key.to_owned(), value);
        }
    }
    user
}

fn permissions(role: Option<Role>) -> Value {
    Value::Object(
        Role::flags(role)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::Bool(v)))
            .collect::<Map<_, _>>(),
    )
}

/// A collaborator: a simple user with `permissions` flags and `role_name`.
pub fn collaborator(world: &World, account: &Account, role: Option<Role>) -> Value {
    let mut user = simple_user(world, account);
    if let Value::Object(fields) = &mut user {
        fields.insert("permissions".to_owned(), permissions(role));
        fields.insert(
            "role_name".to_owned(),
            json!(role.map_or("none", Role::name)),
        );
    }
    user
}

/// The "minimal repository" embedded in invitations and listed by `/orgs/{org}/repos`.
pub fn repository(world: &World, repo: &Repo) -> Value {
    let base = &world.base_url;
    let full_name = world.full_name(repo);
    let owner = world
        .account(&repo.owner)
        .map_or(Value::Null, |a| simple_user(world, a));
    json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": full_name,
        "private": true,
        "owner": owner,
        "html_url": format!("https://github.com/{full_name}"),
        "description": null,
        "fork": false,
        "url": format!("{base}/repos/{full_name}"),
        "collaborators_url": format!("{base}/repos/{full_name}/collaborators{{/collaborator}}"),
        "visibility": "private",
        "default_branch": "main",
        "archived": false,
        "disabled": false,
        "created_at": repo.created_at,
        "updated_at": repo.created_at,
        "pushed_at": repo.created_at,
    })
}

/// A repository as a given caller sees it (with their `permissions`).
pub fn repository_for(world: &World, repo: &Repo, role: Option<Role>) -> Value {
    let mut value = repository(world, repo);
    if let Value::Object(fields) = &mut value {
        fields.insert("permissions".to_owned(), permissions(role));
    }
    value
}

pub fn invitation(world: &World, invitation: &Invitation) -> Value {
    let base = &world.base_url;
    let repo = world.repos.get(&invitation.repo_id);
    let user = |key: &str| {
        world
            .account(key)
            .map_or(Value::Null, |a| simple_user(world, a))
    };
    json!({
        "id": invitation.id,
        "node_id": node_id("RepositoryInvitation", invitation.id),
        "repository": repo.map_or(Value::Null, |r| repository(world, r)),
        "invitee": user(&invitation.invitee),
        "inviter": user(&invitation.inviter),
        "permissions": invitation.role.name(),
        "created_at": invitation.created_at,
        "expired": false,
        "url": format!("{base}/user/repository_invitations/{}", invitation.id),
        "html_url": repo.map_or_else(String::new, |r| format!("https://github.com/{}/invitations", world.full_name(r))),
    })
}
