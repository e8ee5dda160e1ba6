//! The `onlytraffic-proxy` binary: parse the command line, set up logs, load and validate the
//! configuration (a clear one-line message and exit code 2 when it is bad), then run the proxy,
//! the simulator alone (`simulate`) or both together (`demo`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use onlytraffic_proxy::config::{Config, Overrides};
use onlytraffic_proxy::demo::{Demo, DemoError};
use onlytraffic_proxy::simulator::{
    self, DEFAULT_KEY, DEFAULT_LISTEN, DEFAULT_RATE, SimRate, SimulatorConfig,
};
use onlytraffic_proxy::telemetry;

/// mimalloc instead of the system allocator: the proxy allocates and frees small objects on two
/// or more threads for every request, where glibc's malloc costs about a tenth of the CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Serve the simulated OnlyTraffic Partners API alone (no proxy, no real key).
    Simulate(SimulateArgs),
    /// Run the proxy in front of the built-in simulator: try it with no key and no network.
    Demo(DemoArgs),
    /// GET the proxy's /healthz and exit 0 when it answers 2xx, else 1 (for Docker HEALTHCHECK:
    /// needs no shell or curl in the image).
    Healthcheck(HealthcheckArgs),
}

/// `healthcheck`
#[derive(Args)]
struct HealthcheckArgs {
    /// URL to check [default: http://127.0.0.1:<port of OTPROXY_LISTEN, else 8080>/healthz].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

/// `simulate`: taken as text and checked here, so a bad value gets the same one-line error and
/// exit code 2 as a bad setting (clap's own errors span several lines).
#[derive(Args)]
struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// The API key the simulator accepts in `Authorization` (a test value, not a secret).
    #[arg(long, value_name = "KEY", default_value = DEFAULT_KEY)]
    key: String,
    /// Requests the key may make per period before `error_code` 429, e.g. 60/1m or 5/1h.
    #[arg(long, value_name = "N/PERIOD", default_value = DEFAULT_RATE)]
    rate: String,
}

/// `demo`: the proxy's other settings come from the built-in defaults and `OTPROXY_*`.
#[derive(Args)]
struct DemoArgs {
    /// Address the proxy listens on [default: 127.0.0.1:8080; env: OTPROXY_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
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
        Some(Command::Simulate(args)) => simulate(args, filter, format),
        Some(Command::Demo(args)) => demo(args, filter, format),
        Some(Command::Healthcheck(args)) => healthcheck(args),
    }
}

/// `healthcheck`: one GET, bounded by 5s; prints what went wrong on failure.
fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let url = args.url.unwrap_or_else(|| {
        let port = std::env::var("OTPROXY_LISTEN")
            .ok()
            .and_then(|l| l.trim().parse::<SocketAddr>().ok())
            .map_or(8080, |a| a.port());
        format!("http://127.0.0.1:{port}/healthz")
    });
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(_) => return fail(EXIT_RUNTIME, &format!("--url: invalid URL {url:?}")),
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let client = onlytraffic_proxy::proxy::client::build(std::time::Duration::from_secs(5));
        let mut req = http::Request::new(http_body_util::Full::new(bytes::Bytes::new()));
        *req.uri_mut() = uri;
        match tokio::time::timeout(std::time::Duration::from_secs(5), client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => ExitCode::SUCCESS,
            Ok(Ok(resp)) => fail(EXIT_RUNTIME, &format!("{url} answered {}", resp.status())),
            Ok(Err(e)) => fail(EXIT_RUNTIME, &format!("{url} is unreachable: {e}")),
            Err(_) => fail(EXIT_RUNTIME, &format!("{url} did not answer within 5s")),
        }
    })
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
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        // The "serving" line is logged by `run` once every signal handler is in place.
        let (listener, _, shutdown) =
            match listen_with_signals(config.listen, "--listen or OTPROXY_LISTEN").await {
                Ok(v) => v,
                Err(code) => return code,
            };
        match onlytraffic_proxy::run(listener, config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_RUNTIME, &format!("server failed: {e}")),
        }
    })
}

/// `simulate`: the simulator alone, until SIGINT/SIGTERM.
fn simulate(
    args: SimulateArgs,
    filter: tracing_subscriber::EnvFilter,
    format: telemetry::LogFormat,
) -> ExitCode {
    let rate: SimRate = match args.rate.parse() {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CONFIG, &format!("--rate: {e}")),
    };
    let listen: SocketAddr = match args.listen.trim().parse() {
        Ok(a) => a,
        Err(_) => {
            return fail(
                EXIT_CONFIG,
                &format!(
                    "--listen: invalid address {:?}; expected IP:PORT such as {DEFAULT_LISTEN}",
                    args.listen
                ),
            );
        }
    };
    // The simulator compares `Authorization` byte for byte, so a key no client can send as a
    // header value would lock everyone out.
    let key = args.key.trim();
    if key.is_empty() || http::HeaderValue::from_str(key).is_err() {
        return fail(
            EXIT_CONFIG,
            "--key: must be non-empty printable text that can be sent in an HTTP header, e.g. demo-key",
        );
    }
    let config = SimulatorConfig::new(key, rate);
    telemetry::init(filter, format);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let (listener, bound, shutdown) = match listen_with_signals(listen, "--listen").await {
            Ok(v) => v,
            Err(code) => return code,
        };
        say(&format!(
            "simulator listening on http://{bound} (key {:?}, rate {})\n",
            config.key, config.rate
        ));
        match simulator::serve(listener, config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_RUNTIME, &format!("simulator failed: {e}")),
        }
    })
}

/// `demo`: the simulator on a free loopback port and the proxy in front of it, until
/// SIGINT/SIGTERM; prints where the proxy listens and commands to try.
fn demo(
    args: DemoArgs,
    filter: tracing_subscriber::EnvFilter,
    format: telemetry::LogFormat,
) -> ExitCode {
    telemetry::init(filter, format);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let demo = match Demo::bind(args.listen).await {
            Ok(d) => d,
            Err(e @ DemoError::Config(_)) => return fail(EXIT_CONFIG, &e.to_string()),
            Err(e) => return fail(EXIT_RUNTIME, &e.to_string()),
        };
        let shutdown = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                return fail(
                    EXIT_RUNTIME,
                    &format!("cannot install signal handlers: {e}"),
                );
            }
        };
        tracing::info!(
            listen = %demo.proxy_addr(),
            upstream = %demo.config().upstream,
            key = %demo.config().key.fingerprint(),
            "onlytraffic-proxy demo serving"
        );
        say(&demo.instructions());
        match demo.run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_RUNTIME, &format!("server failed: {e}")),
        }
    })
}

/// Writes to stdout at once (it is read by people and by scripts waiting for the address). A
/// closed stdout is not a reason to stop serving, so write errors are ignored.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        fail(
            EXIT_RUNTIME,
            &format!("cannot start the async runtime: {e}"),
        )
    })
}

/// Binds `addr` and then installs the signal handlers, so that a signal sent as soon as the
/// caller announces the address is not missed. `hint` names where the address comes from.
async fn listen_with_signals(
    addr: SocketAddr,
    hint: &str,
) -> Result<
    (
        tokio::net::TcpListener,
        SocketAddr,
        impl std::future::Future<Output = ()> + Send + 'static,
    ),
    ExitCode,
> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        fail(
            EXIT_RUNTIME,
            &format!("cannot listen on {addr}: {e}; pick another address with {hint}"),
        )
    })?;
    let shutdown = shutdown_signal().map_err(|e| {
        fail(
            EXIT_RUNTIME,
            &format!("cannot install signal handlers: {e}"),
        )
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    Ok((listener, bound, shutdown))
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
