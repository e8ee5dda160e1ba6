//! Log setup: `OTPROXY_LOG` (an env-filter, default `info`) and `OTPROXY_LOG_FORMAT` (`text` or
//! `json`), written to stderr.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "OTPROXY_LOG_FORMAT: unknown format {other:?}; expected \"text\" or \"json\""
            )),
        }
    }
}

/// Reads `OTPROXY_LOG` and `OTPROXY_LOG_FORMAT`; an error names the variable and the fix.
pub fn from_env() -> Result<(EnvFilter, LogFormat), String> {
    let filter = std::env::var("OTPROXY_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&filter).map_err(|e| {
        format!("OTPROXY_LOG: invalid filter {filter:?}: {e}; expected e.g. \"info\" or \"onlytraffic_proxy=debug\"")
    })?;
    let format = std::env::var("OTPROXY_LOG_FORMAT")
        .unwrap_or_default()
        .parse()?;
    Ok((filter, format))
}

/// Installs the global subscriber.
pub fn init(filter: EnvFilter, format: LogFormat) {
    // Plain text, no colours even on a terminal: tracing-subscriber's `ansi` feature is off
    // because its styling code runs for every field of every line even when colours are
    // disabled, about 8,000 instructions per access log line (BENCHMARKS.md).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
