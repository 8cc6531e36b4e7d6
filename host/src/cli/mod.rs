//! The `portcullis` command line: argument parsing and exit codes. Each subcommand lives in
//! its own module; `main.rs` only sets up logging and the async runtime.
//!
//! Exit codes are part of the interface (scripts depend on them): see [`Exit`].

mod action;
mod apply;
mod audit;
mod conformance;
mod demo;
pub use demo::start_simulators as start_demo_simulators;
pub mod lifecycle;
mod output;
mod plugin;
pub mod scaffold;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::host::Host;
use output::say;

/// Exit codes. Documented in README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for happened and was verified by reading it back.
    Success = 0,
    /// An action failed, or read-back did not confirm it.
    ActionFailed = 1,
    /// Bad input (arguments, config, plugin file, policy, a stale saved plan), or another
    /// run holds the state. Nothing ran.
    BadInput = 2,
    /// The application accepted the change but it is not in force yet (for example a
    /// GitHub invitation the person must accept).
    Pending = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Grant, revoke and verify fine-grained access through sandboxed connector plugins"
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "portcullis.toml"
    )]
    pub config: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Grant an entitlement, then read it back to confirm.
    Grant(ActionArgs),
    /// Revoke an entitlement, then read it back to confirm.
    Revoke(ActionArgs),
    /// Read back what the application holds for a subject.
    Verify(ActionArgs),
    /// Prove an app's credentials work (the connector's `check`).
    Check(AppArg),
    /// Show a connector's entitlement kinds and levels.
    Describe(AppArg),
    /// List grants that exist in an application (one page, or all with --all).
    ListGrants(ListArgs),
    /// Show what the policy changes, person by person, without changing anything.
    Plan {
        #[command(flatten)]
        policy: lifecycle::PolicyArgs,
        /// Also save the plan (JSON) for `apply --plan FILE`, which runs exactly it or
        /// refuses if anything changed since.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Carry out the policy's plan (or a file of actions) through the engine: in parallel
    /// across apps, inside rate limits, each read back; alerts for anything that does not
    /// converge. State records what was proven.
    Apply {
        /// TOML file of [[actions]] (op, app, subject, kind, resource, level, reason).
        /// Without it, apply runs the plan of the policy.
        file: Option<PathBuf>,
        /// A plan saved by `plan --out`: run it only if planning now gives the same plan.
        #[arg(long, conflicts_with = "file")]
        plan: Option<PathBuf>,
        #[command(flatten)]
        policy: lifecycle::PolicyArgs,
        /// Run id for idempotency keys and audit; default derived from the time.
        #[arg(long)]
        run_id: Option<String>,
        /// Run even if the blast-radius guard would stop it.
        #[arg(long)]
        allow_large_revoke: bool,
        /// With an actions file: check every action against its connector and the
        /// blast-radius guard, show what would run, and execute nothing. (For the policy's
        /// plan, use `portcullis plan`.)
        #[arg(long, requires = "file")]
        dry_run: bool,
    },
    /// Run as a service: the JSON API under /v1 (plans, applies as jobs, approvals, HR
    /// events signed by the HR system, apps, plugins, jobs), the scheduler (time-bound
    /// grants end on time, pending invitations are re-checked, drift and dormant sweeps),
    /// until SIGTERM or Ctrl-C. Holds the state: CLI runs that change apps are refused
    /// meanwhile.
    Serve {
        /// Address to listen on (default `[server] listen`, 127.0.0.1:8740).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Join the pool of workers of a PostgreSQL state (`[state] url`): carry out the
    /// actions every run enqueues, take over those of a worker that died (reading each
    /// back first), run the scheduled jobs while elected, until SIGTERM or Ctrl-C.
    Worker,
    /// List approval requests (pending ones; --all for every one).
    Approvals {
        #[arg(long)]
        all: bool,
    },
    /// Approve a change that waits for approval; the next apply carries it out.
    Approve(lifecycle::DecideArgs),
    /// Deny a change that waits for approval; it is not carried out.
    Deny(lifecycle::DecideArgs),
    /// List what every app (or --app) holds, through each connector's list-grants, and
    /// store it as observed state.
    Discover {
        #[arg(long)]
        app: Vec<String>,
        #[command(flatten)]
        policy: lifecycle::PolicyArgs,
    },
    /// Discover, then report grants outside policy and grants the policy wants that are
    /// missing; --apply corrects them (only what Portcullis manages).
    Drift {
        #[command(flatten)]
        policy: lifecycle::PolicyArgs,
        #[arg(long)]
        apply: bool,
        #[arg(long)]
        allow_large_revoke: bool,
    },
    /// Flag managed grants unused for --days (default 90) and request approval to revoke
    /// them. --usage imports usage events (JSON) first.
    Dormant {
        #[arg(long, default_value_t = crate::dormant::DEFAULT_DAYS)]
        days: u32,
        #[arg(long)]
        usage: Option<PathBuf>,
        #[arg(long)]
        at: Option<String>,
    },
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Josh's joiner-to-leaver lifecycle from a policy, on built-in simulators with SQLite
    /// state: plan, apply, re-check, drift, the blast-radius guard. With --serve, the
    /// simulators and `portcullis serve` keep running with a demo token, until Ctrl-C.
    Demo {
        /// Start the service on the simulators instead of running the scripted lifecycle.
        #[arg(long)]
        serve: bool,
        /// With --serve: the address to listen on (default 127.0.0.1:8740).
        #[arg(long, requires = "serve")]
        listen: Option<String>,
        /// Keep the demo's config, state and audit trail in DIR (created if missing), for
        /// `portcullis --config DIR/portcullis.toml audit verify` and `audit query`.
        #[arg(long, conflicts_with = "serve")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct AppArg {
    /// The app instance, as named under [apps.NAME] in the config.
    #[arg(long)]
    pub app: String,
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    #[arg(long)]
    pub app: String,
    /// The person, in the application's identifiers (a GitHub login).
    #[arg(long)]
    pub subject: String,
    #[arg(long)]
    pub email: Option<String>,
    /// Entitlement kind, such as `repository`.
    #[arg(long)]
    pub kind: String,
    /// The resource, such as `acme/platform-api`.
    #[arg(long)]
    pub resource: String,
    /// Level within the kind, such as `maintain`.
    #[arg(long)]
    pub level: Option<String>,
    /// Why, for the audit trail and the application's own records.
    #[arg(long, default_value = "requested from the portcullis CLI")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub kind: String,
    #[arg(long)]
    pub resource: Option<String>,
    /// Follow every page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole trail (every segment): hash chain, signed checkpoints, sealed torn
    /// lines and the checkpoint copies in `[audit] checkpoints`. Exits 1 naming the first
    /// record that was changed, deleted, inserted or moved, a truncated tail, a torn last
    /// line or a forged checkpoint; 0 when it holds.
    Verify {
        /// The trail (JSON lines); default `[audit] path` of the config.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The public key checkpoints must be signed with (hex, or a file holding it).
        #[arg(long)]
        key: Option<String>,
        /// The second location's checkpoints; default `[audit] checkpoints`.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Print the public key that signs the trail's checkpoints, for auditors.
    Key {
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write a signed checkpoint now.
    Checkpoint {
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print an inclusion proof of record SEQ against the checkpoint that covers it
    /// (JSON; check it with `audit check-proof`, without the trail).
    Prove {
        seq: u64,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Check an inclusion proof written by `audit prove`.
    CheckProof {
        proof: PathBuf,
        /// The public key the checkpoint must be signed with.
        #[arg(long)]
        key: Option<String>,
    },
    /// Records filtered by person, app, run, time and kind: a table, `--json` or `--csv`.
    Query {
        #[arg(long)]
        file: Option<PathBuf>,
        /// Directory id, or the person's account (subject id or e-mail) in an app.
        #[arg(long)]
        person: Option<String>,
        #[arg(long)]
        app: Option<String>,
        #[arg(long)]
        run: Option<String>,
        /// RFC 3339 or a date (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Event kinds (`action-started`, `action-finished`, `approval-decided`, ...).
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's contract, sha256, size, signer, declared kinds and levels, imports,
    /// and what an app's config grants it (origin, secrets, limits). TARGET is a .wasm
    /// file, a configured app's name or a bundled plugin's name.
    Inspect {
        target: String,
        /// Also show what this configured app grants the plugin, and whether its trust
        /// settings load it.
        #[arg(long)]
        app: Option<String>,
    },
    /// Accept the app's current plugin version after review: a version that widens what
    /// the accepted one could do (a new import, kind, level or signer) does not serve
    /// until then. Recorded in state and audit with both sha256s.
    Accept {
        app: String,
        /// Who accepts (default: the OS user).
        #[arg(long)]
        by: Option<String>,
    },
    /// Fetch a component from an OCI registry: its digest and signatures are checked, and
    /// the config's trust settings judge it, before anything is written.
    Pull {
        /// REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        reference: String,
        /// Directory to write NAME.wasm into (NAME: the repository's last segment).
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
        /// Write exactly this file instead.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Judge it with this configured app's trust settings.
        #[arg(long)]
        app: Option<String>,
        /// Refuse it unless a trusted publisher signed it, whatever the config says.
        #[arg(long)]
        require_signed: bool,
        /// Plain HTTP (a registry on loopback for a local trial).
        #[arg(long)]
        plain_http: bool,
    },
    /// Publish a component to an OCI registry (one application/wasm layer).
    Push {
        file: PathBuf,
        reference: String,
        #[arg(long)]
        plain_http: bool,
    },
    /// Make a signing key: FILE (secret, owner-only) and FILE.pub.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a component with a key from `plugin keygen`: a signature section inside the
    /// file (one artifact), or FILE.sig beside it with --detached.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        detached: bool,
    },
    /// Check a plugin's signatures (and, with --app, whether that app's trust settings
    /// load it). Exit 1 when unsigned, changed since signing, forged or revoked.
    Verify {
        target: String,
        #[arg(long)]
        app: Option<String>,
        /// Require a signature by this public key (ed25519:HEX or a file).
        #[arg(long)]
        key: Option<String>,
    },
    /// Run the conformance kit against a configured app: check, grant, verify, grant
    /// again, list, revoke, verify, revoke again, list. Changes real access: point it at a
    /// test subject and resource.
    Test(ActionArgs),
    /// Scaffold a new connector crate (plugins/NAME) with a simulator-backed test.
    New {
        name: String,
        /// Write a standalone crate (a vendor's own repository) into DIR. Without it: in
        /// the Portcullis repository root, plugins/NAME; anywhere else, ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Portcullis repository root, for a connector inside the repository.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// The standalone crate depends on the SDK at this path (default: by version).
        #[arg(long, conflicts_with = "sdk_git")]
        sdk_path: Option<PathBuf>,
        /// The standalone crate depends on the SDK from this git repository.
        #[arg(long)]
        sdk_git: Option<String>,
    },
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> Exit {
    let json = cli.json;
    match cli.command {
        Command::Demo {
            serve: false, dir, ..
        } => demo::run(json, dir.as_deref()).await,
        Command::Demo {
            serve: true,
            listen,
            ..
        } => demo::serve::run(listen, json).await,
        Command::Plugin(PluginCommand::Inspect { target, app }) => {
            plugin::inspect(&cli.config, &target, app.as_deref(), json).await
        }
        Command::Plugin(PluginCommand::Keygen { out }) => plugin::keygen(&out, json),
        Command::Plugin(PluginCommand::Pull {
            reference,
            dir,
            out,
            app,
            require_signed,
            plain_http,
        }) => {
            let args = plugin::PullArgs {
                reference: &reference,
                dir: &dir,
                out: out.as_deref(),
                app: app.as_deref(),
                require_signed,
                plain_http,
            };
            plugin::pull(&cli.config, &args, json).await
        }
        Command::Plugin(PluginCommand::Push {
            file,
            reference,
            plain_http,
        }) => plugin::push(&file, &reference, plain_http, json).await,
        Command::Plugin(PluginCommand::Sign {
            file,
            key,
            detached,
        }) => plugin::sign(&file, &key, detached, json),
        Command::Plugin(PluginCommand::Verify { target, app, key }) => {
            plugin::verify(&cli.config, &target, app.as_deref(), key.as_deref(), json)
        }
        Command::Plugin(PluginCommand::New {
            name,
            dir,
            root,
            sdk_path,
            sdk_git,
        }) => {
            let sdk = match (sdk_path, sdk_git) {
                (Some(path), _) => scaffold::SdkSource::Path(path),
                (None, Some(url)) => scaffold::SdkSource::Git(url),
                (None, None) => scaffold::SdkSource::Version,
            };
            new_plugin(&root, dir.as_deref(), &name, &sdk, json)
        }
        Command::Plan { policy, out } => {
            lifecycle::plan_command(&cli.config, &policy, out.as_deref(), json).await
        }
        Command::Apply {
            file: None,
            plan,
            policy,
            run_id,
            allow_large_revoke,
            dry_run: _,
        } => {
            let run = lifecycle::RunArgs {
                saved: plan.as_deref(),
                run_id,
                allow_large_revoke,
            };
            lifecycle::apply_policy(&cli.config, &policy, run, json).await
        }
        Command::Serve { listen } => serve::run(&cli.config, listen, json).await,
        Command::Worker => serve::work(&cli.config, json).await,
        Command::Audit(command) => audit::run(&cli.config, command, json),
        Command::Approvals { all } => lifecycle::list_approvals(&cli.config, all, json),
        Command::Approve(args) => lifecycle::decide(&cli.config, &args, true, json),
        Command::Deny(args) => lifecycle::decide(&cli.config, &args, false, json),
        Command::Discover { app, policy } => {
            lifecycle::discover_command(&cli.config, &app, &policy, json).await
        }
        Command::Drift {
            policy,
            apply,
            allow_large_revoke,
        } => lifecycle::drift_command(&cli.config, &policy, apply, allow_large_revoke, json).await,
        Command::Dormant { days, usage, at } => {
            lifecycle::dormant_command(&cli.config, days, usage.as_deref(), at.as_deref(), json)
                .await
        }
        Command::Plugin(PluginCommand::Test(args)) => match reviewed_host(&cli.config).await {
            Ok((host, _)) => conformance::run(&host, &args, json).await,
            Err(message) => output::bad_input(&message, json),
        },
        Command::Plugin(PluginCommand::Accept { app, by }) => {
            plugin::accept(&cli.config, &app, by, json).await
        }
        command => {
            let (host, engine_options) = match reviewed_host(&cli.config).await {
                Ok(loaded) => loaded,
                Err(message) => return output::bad_input(&message, json),
            };
            // A command on one app whose secret cannot be read is bad input, like a config
            // error (exit 2, nothing ran); commands over many apps let that app fail alone.
            let single_app = match &command {
                Command::Grant(a) | Command::Revoke(a) | Command::Verify(a) => Some(&a.app),
                Command::Check(a) => Some(&a.app),
                Command::ListGrants(a) => Some(&a.app),
                _ => None,
            };
            if let Some(app) = single_app
                && let Err(problem) = host.secrets_ready(app)
            {
                return output::bad_input(&format!("{}: {problem}", cli.config.display()), json);
            }
            // A one-off change takes the run lock too, so a running service (or run) that
            // holds the state refuses it by name instead of racing it.
            let one_off = match &command {
                Command::Grant(_) => Some("`portcullis grant`"),
                Command::Revoke(_) => Some("`portcullis revoke`"),
                _ => None,
            };
            let _state_lock = match one_off {
                Some(what) => {
                    let held = Config::load(&cli.config)
                        .map_err(|e| crate::ops::OpError::Input(e.to_string()))
                        .and_then(|config| {
                            crate::ops::hold_state_if_present(
                                &config,
                                &crate::ops::lock_holder(what),
                            )
                        });
                    match held {
                        Ok(lock) => lock,
                        Err(e) => return lifecycle::failed(&e, json),
                    }
                }
                None => None,
            };
            match command {
                Command::Grant(args) => action::grant(&host, &args, json).await,
                Command::Revoke(args) => action::revoke(&host, &args, json).await,
                Command::Verify(args) => action::verify(&host, &args, json).await,
                Command::Check(args) => action::check(&host, &args.app, json).await,
                Command::Describe(args) => action::describe(&host, &args.app, json).await,
                Command::ListGrants(args) => action::list_grants(&host, &args, json).await,
                Command::Apply {
                    file: Some(file),
                    plan: _,
                    policy,
                    run_id,
                    allow_large_revoke,
                    dry_run,
                } => {
                    if policy.policy.is_some()
                        || policy.directory.is_some()
                        || policy.events.is_some()
                        || policy.at.is_some()
                    {
                        return output::bad_input(
                            "an actions file and --policy/--directory/--events/--at do not mix: apply either a file of actions or the policy's plan",
                            json,
                        );
                    }
                    let args = apply::ApplyArgs {
                        file: &file,
                        run_id,
                        allow_large_revoke,
                        options: engine_options,
                        json,
                        dry_run,
                    };
                    apply::run(host, args).await
                }
                _ => Exit::BadInput,
            }
        }
    }
}

fn new_plugin(
    root: &std::path::Path,
    dir: Option<&std::path::Path>,
    name: &str,
    sdk: &scaffold::SdkSource,
    json: bool,
) -> Exit {
    let in_repository = dir.is_none() && scaffold::is_portcullis_repository(root);
    let written = if in_repository {
        scaffold::write(root, name)
    } else {
        let dir = dir.map_or_else(|| std::path::PathBuf::from(name), std::path::Path::to_owned);
        scaffold::write_standalone(&dir, name, sdk)
    };
    let files = match written {
        Ok(files) => files,
        Err(message) => return output::bad_input(&message, json),
    };
    if json {
        output::emit(&serde_json::json!({ "ok": true, "exit": 0, "files": files }));
        return Exit::Success;
    }
    for file in &files {
        say!("created {}", file.display());
    }
    if in_repository {
        say!(
            "\nnext: cargo test -p portcullis-e2e --test {}   (builds the plugin to wasm and runs the conformance kit)",
            name.replace('-', "_")
        );
        say!("then edit plugins/{name}/src/lib.rs for your application's API; see sdk/README.md");
    } else {
        let dir = dir.map_or_else(|| std::path::PathBuf::from(name), std::path::Path::to_owned);
        say!(
            "\nnext: cd {} && cargo test   (builds the component and runs the conformance kit against the fake API in tests/conformance.rs)",
            dir.display()
        );
        say!(
            "then edit src/lib.rs for your application's API; README.md covers build, test, signing and release"
        );
    }
    Exit::Success
}

/// [`load_host`], then the upgrade review of every app's plugin when the config's state
/// exists (it holds the accepted versions; without state nothing was accepted yet).
async fn reviewed_host(
    path: &std::path::Path,
) -> Result<(Host, crate::engine::EngineOptions), String> {
    let (host, engine) = load_host(path)?;
    let config = Config::load(path).map_err(|e| e.to_string())?;
    if config.state.exists() {
        let (_, store) = crate::ops::open_state(path).map_err(|e| e.to_string())?;
        crate::ops::upgrades::review_host(&host, store.as_ref())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((host, engine))
}

/// Loads the config and builds the host; any failure is bad input, described fully.
pub(crate) fn load_host(
    path: &std::path::Path,
) -> Result<(Host, crate::engine::EngineOptions), String> {
    let mut config = Config::load(path).map_err(|e| e.to_string())?;
    if config.runtime.cache_dir.is_none() {
        config.runtime.cache_dir = crate::cache::CompileCache::default_dir();
    }
    let engine = config.engine.clone();
    let host = Host::builder(config).build().map_err(|e| e.to_string())?;
    Ok((host, engine))
}
