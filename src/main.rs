//! The `onlytraffic-proxy` binary: parse the command line, set up logs, load and validate the
//! configuration (a clear one-line message and exit code 2 when it is bad), then run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use onlytraffic_proxy::config::{Config, Overrides};
use onlytraffic_proxy::telemetry;

/// Exit code for bad configuration or arguments.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time (e.g. the listen address is taken).
const EXIT_RUNTIME: u8 = 1;

#[derive(Parser)]
#[command(
    name = "onlytraffic-proxy",
    version,
    about = "Local authenticating reverse proxy for the OnlyTraffic Partners API",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Where settings come from, besides `OTPROXY_*` variables and the key variables.
#[derive(Args, Clone, Default)]
struct RunArgs {
    /// TOML configuration file.
    #[arg(long, env = "OTPROXY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080; env: OTPROXY_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Upstream base URL [default: https://partner.onlytraffic.com; env: OTPROXY_UPSTREAM].
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration (the key only as a fingerprint) and exit.
    CheckConfig(RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (filter, format) = match telemetry::from_env() {
        Ok(v) => v,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    match cli.command {
        None => run(cli.run, filter, format),
        Some(Command::CheckConfig(args)) => match load(&args) {
            Ok(config) => {
                print!("{}", config.render());
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_CONFIG, &e),
        },
    }
}

fn load(args: &RunArgs) -> Result<Config, String> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        upstream: args.upstream.clone(),
    };
    Config::load(args.config.as_deref(), &overrides).map_err(|e| e.to_string())
}

fn run(
    args: RunArgs,
    filter: tracing_subscriber::EnvFilter,
    format: telemetry::LogFormat,
) -> ExitCode {
    let config = match load(&args) {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    telemetry::init(filter, format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(
                EXIT_RUNTIME,
                &format!("cannot start the async runtime: {e}"),
            );
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                return fail(
                    EXIT_RUNTIME,
                    &format!(
                        "cannot listen on {}: {e}; pick another address with --listen or OTPROXY_LISTEN",
                        config.listen
                    ),
                );
            }
        };
        let shutdown = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => return fail(EXIT_RUNTIME, &format!("cannot install signal handlers: {e}")),
        };
        let bound = listener.local_addr().map_or(config.listen, |a| a);
        tracing::info!(
            listen = %bound,
            upstream = %config.upstream,
            key = %config.key.fingerprint(),
            "onlytraffic-proxy serving"
        );
        match onlytraffic_proxy::run(listener, config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_RUNTIME, &format!("server failed: {e}")),
        }
    })
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM (docker stop, Kubernetes) handlers now, so a signal
/// that arrives right after startup is not missed, and returns a future that resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("onlytraffic-proxy: {message}");
    ExitCode::from(code)
}
