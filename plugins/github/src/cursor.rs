//! The `list-grants` cursor: opaque to the host, plain text to us.
//!
//! `collaborators <url>` / `invitations <url>` page through one repository (collaborators
//! first, then pending invitations); `org <repos-page-url> <index> <owner/repo> <phase>
//! <url>` does the same for the `index`-th repository of a page of the organisation's
//! repositories. URLs are GitHub's own `Link: rel="next"` targets.
//! Must never: accept a URL outside the application's base URL; a cursor comes back
//! from the host and must not turn the plugin into a fetcher of arbitrary URLs.

use portcullis_sdk::{Error, Result};

use crate::names::Repo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Collaborators(String),
    Invitations(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Repo(Phase),
    Org {
        repos: String,
        index: usize,
        repo: Repo,
        phase: Phase,
    },
}

impl Phase {
    fn encode(&self) -> String {
        match self {
            Self::Collaborators(url) => format!("collaborators {url}"),
            Self::Invitations(url) => format!("invitations {url}"),
        }
    }
}

impl Cursor {
    pub fn encode(&self) -> String {
        match self {
            Self::Repo(phase) => phase.encode(),
            Self::Org {
                repos,
                index,
                repo,
                phase,
            } => {
                format!("org {repos} {index} {repo} {}", phase.encode())
            }
        }
    }

    /// Parses a cursor we produced, checking every URL lies under `base`.
    pub fn decode(text: &str, base: &str) -> Result<Self> {
        let bad = || {
            Error::invalid_request(format!(
                "cursor {:?} was not produced by this connector for {base}; restart listing without a cursor",
                text.chars().take(100).collect::<String>()
            ))
        };
        let url = |u: &str| -> Result<String> {
            let prefix = format!("{}/", base.trim_end_matches('/'));
            if u.starts_with(&prefix) {
                Ok(u.to_owned())
            } else {
                Err(bad())
            }
        };
        let parts: Vec<&str> = text.split(' ').collect();
        let phase = |kind: &str, u: &str| -> Result<Phase> {
            match kind {
                "collaborators" => Ok(Phase::Collaborators(url(u)?)),
                "invitations" => Ok(Phase::Invitations(url(u)?)),
                _ => Err(bad()),
            }
        };
        match parts.as_slice() {
            [kind, u] => Ok(Self::Repo(phase(kind, u)?)),
            ["org", repos, index, repo, kind, u] => Ok(Self::Org {
                repos: url(repos)?,
                index: index.parse().map_err(|_| bad())?,
                repo: Repo::parse(repo).map_err(|_| bad())?,
                phase: phase(kind, u)?,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:8080";

    #[test]
    fn round_trips() {
        let cursors = [
            Cursor::Repo(Phase::Collaborators(format!(
                "{BASE}/repositories/1/collaborators?page=2"
            ))),
            Cursor::Repo(Phase::Invitations(format!(
                "{BASE}/repos/acme/api/invitations?per_page=100"
            ))),
            Cursor::Org {
                repos: format!("{BASE}/organizations/9/repos?page=3"),
                index: 7,
                repo: Repo {
                    owner: "acme".into(),
                    name: "api".into(),
                },
                phase: Phase::Invitations(format!("{BASE}/repos/acme/api/invitations")),
            },
        ];
        for c in cursors {
            assert_eq!(Cursor::decode(&c.encode(), BASE).ok(), Some(c));
        }
    }

    #[test]
    fn foreign_or_malformed_cursors_are_refused() {
        for text in [
            "collaborators https://evil.example/x",
            "collaborators http://127.0.0.1:8080.evil.example/x",
            "invitations",
            "members http://127.0.0.1:8080/x",
            "org http://127.0.0.1:8080/o nope acme/api collaborators http://127.0.0.1:8080/x",
            "org http://127.0.0.1:8080/o 1 ../x collaborators http://127.0.0.1:8080/x",
            "",
        ] {
            assert!(
                matches!(Cursor::decode(text, BASE), Err(Error::InvalidRequest(_))),
                "{text}"
            );
        }
    }
}
