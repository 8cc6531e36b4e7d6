//! Stateful simulators of the applications Portcullis manages, served over real HTTP on
//! 127.0.0.1 so connectors (real wasm plugins behind the real host egress) can be tested
//! end to end without the internet. `portcullis demo` starts four in-process.
//!
//! Layout:
//! - [`Server`] (`server.rs`): what every simulator shares — bind 127.0.0.1 on an
//!   ephemeral port, serve an axum router on the current tokio runtime, record every
//!   request (never its credentials), shut down gracefully when dropped.
//! - [`faults`]: fault injection a test turns on per simulator (resets, slow answers,
//!   vendor-shaped 5xx and rate limits, an enforced rate; writes dropped or lagging).
//! - [`github`]: the GitHub REST API (collaborators, invitations, paging, rate limits).
//! - [`reflect`]: a hostile origin that echoes request headers, for secret-handling tests.
//! - [`postgres`]: not a simulator but the real thing: a PostgreSQL server the tests start
//!   (Debian's `postgresql` package) for the PostgreSQL state backend.
//!
//! A simulator must be faithful where a connector could tell the difference: paths,
//! status codes, body shapes, header names and formats, vocabularies. Where it simplifies,
//! its module docs say so. Later simulators (Slack, Jira, Okta, ...) and fault injection
//! go beside `github/`, each on its own [`Server`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = portcullis_simulators::github_demo().await?;
//! let url = format!("{}/user", sim.base_url());
//! // ... point a connector at sim.base_url() with GITHUB_DEMO_TOKEN ...
//! # let _ = url;
//! assert!(sim.requests().is_empty());
//! # Ok(())
//! # }
//! ```

pub mod faults;
pub mod gdrive;
pub mod github;
mod http;
pub mod jira;
pub mod okta;
pub mod postgres;
pub mod reflect;
pub mod salesforce;
pub mod scim;
mod server;
pub mod slack;

pub use faults::{FaultResponses, Faults};
pub use gdrive::{DriveSimulator, GDRIVE_DEMO_TOKEN, gdrive_demo};
pub use github::{GITHUB_DEMO_TOKEN, GithubSimulator, github_demo};
pub use jira::{JIRA_DEMO_EMAIL, JIRA_DEMO_TOKEN, JiraSimulator, jira_demo};
pub use okta::{OKTA_DEMO_TOKEN, OktaSimulator, okta_demo};
pub use reflect::ReflectingOrigin;
pub use salesforce::{SALESFORCE_DEMO_TOKEN, SalesforceSimulator, salesforce_demo};
pub use scim::{NonMemberRemoval, ScimSimulator};
pub use server::{RecordedRequest, Server};
pub use slack::{SLACK_DEMO_TOKEN, SlackSimulator, slack_demo};
