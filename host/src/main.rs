//! The `portcullis` binary: logging, the async runtime, and the CLI. Everything else lives
//! in the library (see `cli/`).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use portcullis::cli::{Cli, Exit, run};
use portcullis::redact::ScrubbingStderr;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so `--json` output on stdout stays clean; RUST_LOG overrides.
    // Every line is scrubbed of loaded secrets; colours only on a terminal without NO_COLOR
    // (https://no-color.org: set and not empty).
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colours = std::io::stderr().is_terminal() && !no_color;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_ansi(colours)
        .with_writer(ScrubbingStderr { colours })
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::ActionFailed.into();
        }
    };
    runtime.block_on(run(cli)).into()
}
