//! Configuration: built-in defaults < TOML file < `OTPROXY_*` environment < command-line flags,
//! parsed into [`Settings`] and then validated into the typed [`Config`] before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::{ApiKey, KeyError};

/// The prefix of every environment variable that maps onto a setting.
pub const ENV_PREFIX: &str = "OTPROXY_";

/// Environment variables with the prefix that are not settings (read elsewhere).
/// The most `workers` accepted: each is a thread with its own event loop.
const MAX_WORKERS: usize = 256;

const ENV_NOT_SETTINGS: &[&str] = &["CONFIG", "LOG", "LOG_FORMAT"];

/// The raw settings as written in `config/default.toml`; every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the proxy listens on.
    pub listen: String,
    /// Base URL of the partner API.
    pub upstream: String,
    /// Threads serving the main listener, each with its own event loop; 0: one per CPU.
    pub workers: usize,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub inbound: Inbound,
    pub rate_limit: RateLimitConfig,
    pub retry: RetryConfig,
    pub admin: Admin,
    /// Envelope `error_code` -> HTTP status overrides, e.g. `"401" = 502`.
    pub status_map: BTreeMap<String, u16>,
}

/// `[admin]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// A separate address for `/metrics` (and the health endpoints); unset: the main listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            upstream: "https://partner.onlytraffic.com".into(),
            workers: 0,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            inbound: Inbound::default(),
            rate_limit: RateLimitConfig::default(),
            retry: RetryConfig::default(),
            admin: Admin::default(),
            status_map: BTreeMap::new(),
        }
    }
}

/// `[timeouts]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Establishing one upstream connection (TCP and TLS).
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// One upstream try: request sent until the response body is read.
    #[serde(with = "humantime_serde")]
    pub attempt: Duration,
    /// The whole request, later retries and waits included.
    #[serde(with = "humantime_serde")]
    pub total: Duration,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
            total: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Larger request bodies get 413 and are not forwarded.
    pub max_request_body: ByteSize,
    /// Larger responses are streamed through unchanged, without the envelope rewrite.
    pub max_response_body: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body: ByteSize::mib(1),
            max_response_body: ByteSize::mib(32),
        }
    }
}

/// `[inbound]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    /// A file with one accepted bearer token per line; unset means no inbound auth.
    pub tokens_file: Option<PathBuf>,
    /// Explicitly allow a non-loopback listener without inbound tokens.
    pub allow_anonymous: bool,
}

/// `[rate_limit]`: the key's quota, spent evenly by one GCRA limiter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per `per`.
    pub rate: NonZeroU32,
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Requests that may go at once after a quiet spell.
    pub burst: NonZeroU32,
    /// Longest a request waits for a token before it is answered 429.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Most requests waiting at once; more are answered 429 at once.
    pub max_queue: usize,
    /// Per-route rules, applied before the global limiter.
    pub routes: Vec<RouteRuleConfig>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            rate: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
            per: Duration::from_secs(60),
            burst: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            max_wait: Duration::from_secs(30),
            max_queue: 10_000,
            routes: vec![RouteRuleConfig {
                route: "generate_link".into(),
                rate: NonZeroU32::MIN,
                per: Duration::from_secs(300),
                burst: NonZeroU32::MIN,
                max_wait: Duration::ZERO,
                key: Some("smartlink_id".into()),
            }],
        }
    }
}

/// `[[rate_limit.routes]]`: a limit for one operation, optionally per value of a field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRuleConfig {
    /// A v1 `do` value (`generate_link`) or a v2 path (`/api/marketer/cpc/orders`).
    pub route: String,
    pub rate: NonZeroU32,
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    #[serde(default = "one")]
    pub burst: NonZeroU32,
    #[serde(with = "humantime_serde", default)]
    pub max_wait: Duration,
    /// A body (JSON or form) or query field whose value gets its own allowance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn one() -> NonZeroU32 {
    NonZeroU32::MIN
}

/// Which server errors (502/503/504, attempt timeouts, broken connections) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerErrorRetry {
    /// Never: only 429s and connection failures are retried.
    None,
    /// GET, HEAD and the v1 read actions (every `do` but `generate_link`).
    Reads,
    /// Every request, writes included.
    All,
}

/// `[retry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    pub retry_server_errors: ServerErrorRetry,
    /// Retries allowed as a share of requests over a rolling 10s, in percent.
    pub budget_percent: f32,
    /// Retries per second allowed whatever the traffic (the budget's floor).
    pub budget_min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            retry_server_errors: ServerErrorRetry::Reads,
            budget_percent: 20.0,
            budget_min_per_sec: 3,
        }
    }
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// Why the configuration was refused. The text names the setting, the bad value and what is
/// expected; it never contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check --config / OTPROXY_CONFIG")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstream: Upstream,
    /// Worker threads for the main listener (`workers`, 0 resolved to the CPU count).
    pub workers: NonZeroUsize,
    pub timeouts: Timeouts,
    pub max_request_body: u64,
    pub max_response_body: u64,
    pub inbound_tokens: Option<InboundTokens>,
    pub allow_anonymous: bool,
    pub rate_limit: RateLimitConfig,
    pub retry: RetryConfig,
    /// Where `/metrics` is served instead of the main listener.
    pub admin_listen: Option<SocketAddr>,
    /// `error_code` -> HTTP status overrides.
    pub status_map: BTreeMap<u16, StatusCode>,
    pub key: ApiKey,
    /// The settings these values came from, for `check-config`.
    pub settings: Settings,
}

/// The one upstream the proxy ever talks to.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path prefix without a trailing slash ("" for none).
    pub base_path: String,
}

impl Upstream {
    /// Parses and checks an upstream URL: http(s), a host, no query or fragment.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid upstream {raw:?}: {why}; expected an http:// or https:// URL such as https://partner.onlytraffic.com"
            )
        };
        let uri: Uri = raw.trim().parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad("the scheme must be http or https"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not allowed"));
        }
        if uri.query().is_some() || raw.contains('#') {
            return Err(bad("a query or fragment is not allowed"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            base_path,
        })
    }

    /// The upstream URI for a client's path and query, byte for byte.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let pq = if self.base_path.is_empty() {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", self.base_path)
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// Accepted inbound bearer tokens, kept only as SHA-256 digests so that comparison is constant
/// time and independent of the token length.
#[derive(Clone)]
pub struct InboundTokens(Arc<[[u8; 32]]>);

impl std::fmt::Debug for InboundTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InboundTokens({} tokens, redacted)", self.0.len())
    }
}

impl InboundTokens {
    /// Reads one token per line; blank lines and lines starting with `#` are skipped.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::Setting(format!(
                "inbound.tokens_file: cannot read {}: {e}; point it at a readable file with one token per line",
                path.display()
            ))
        })?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        if digests.is_empty() {
            return Err(ConfigError::Setting(format!(
                "inbound.tokens_file: {} holds no token; put one token per line",
                path.display()
            )));
        }
        Ok(Self(digests.into()))
    }

    /// True when `presented` is one of the tokens. Every token is compared, in constant time.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = subtle::Choice::from(0);
        for t in self.0.iter() {
            found |= t.ct_eq(&digest);
        }
        found.into()
    }
}

impl Config {
    /// Loads settings from the layers (file, process environment, flags) and the key from the
    /// environment, then validates everything.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let settings = Self::load_settings(config_file, overrides)?;
        let key = ApiKey::from_env(|name| std::env::var_os(name))?;
        Self::validate(settings, key)
    }

    /// Merges defaults, the file, `OTPROXY_*` variables and flags, in that order.
    pub fn load_settings(
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config_file {
            // figment silently skips a missing file; a file the user named must exist.
            std::fs::metadata(path).map_err(|source| ConfigError::File {
                path: path.to_owned(),
                source,
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .ignore(ENV_NOT_SETTINGS)
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides));
        figment
            .extract()
            .map_err(|e| ConfigError::Setting(describe(e)))
    }

    /// Turns raw settings into typed values, refusing anything unsafe or meaningless.
    pub fn validate(settings: Settings, key: ApiKey) -> Result<Self, ConfigError> {
        let err = |s: String| ConfigError::Setting(s);
        let listen: SocketAddr = settings.listen.trim().parse().map_err(|_| {
            err(format!(
                "listen: invalid address {:?}; expected IP:PORT such as 127.0.0.1:8080",
                settings.listen
            ))
        })?;
        let upstream =
            Upstream::parse(&settings.upstream).map_err(|e| err(format!("upstream: {e}")))?;
        let t = &settings.timeouts;
        for (name, value) in [
            ("timeouts.connect", t.connect),
            ("timeouts.attempt", t.attempt),
            ("timeouts.total", t.total),
        ] {
            if value.is_zero() {
                return Err(err(format!(
                    "{name}: must be greater than 0; write a duration such as \"30s\""
                )));
            }
        }
        let max_request_body = settings.limits.max_request_body.as_u64();
        let max_response_body = settings.limits.max_response_body.as_u64();
        if max_response_body == 0 {
            return Err(err(
                "limits.max_response_body: must be greater than 0; write a size such as \"32MiB\""
                    .into(),
            ));
        }
        let inbound_tokens = settings
            .inbound
            .tokens_file
            .as_deref()
            .map(InboundTokens::load)
            .transpose()?;
        if !listen.ip().is_loopback()
            && inbound_tokens.is_none()
            && !settings.inbound.allow_anonymous
        {
            return Err(err(format!(
                "listen: {listen} is not a loopback address, so anyone who can reach it could spend the API key; \
                 set inbound.tokens_file (OTPROXY_INBOUND__TOKENS_FILE) to require bearer tokens, \
                 or inbound.allow_anonymous = true (OTPROXY_INBOUND__ALLOW_ANONYMOUS=true) to accept that"
            )));
        }
        let admin_listen = settings
            .admin
            .listen
            .as_deref()
            .map(|a| {
                a.trim().parse::<SocketAddr>().map_err(|_| {
                    err(format!(
                        "admin.listen: invalid address {a:?}; expected IP:PORT such as 127.0.0.1:9100"
                    ))
                })
            })
            .transpose()?;
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            n if n > MAX_WORKERS => {
                return Err(err(format!(
                    "workers: {n} is too many; expected 0 (one per CPU) to {MAX_WORKERS}"
                )));
            }
            n => NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
        };
        validate_rate_limit(&settings.rate_limit).map_err(err)?;
        validate_retry(&settings.retry).map_err(err)?;
        let mut status_map = BTreeMap::new();
        for (code, status) in &settings.status_map {
            let code: u16 = code.trim().parse().map_err(|_| {
                err(format!(
                    "status_map: key {code:?} is not an error_code; expected a number such as \"401\""
                ))
            })?;
            let status = StatusCode::from_u16(*status)
                .ok()
                .filter(|s| (100..=599).contains(&s.as_u16()))
                .ok_or_else(|| {
                    err(format!(
                        "status_map.{code}: {status} is not an HTTP status; expected 100..=599"
                    ))
                })?;
            status_map.insert(code, status);
        }
        Ok(Self {
            listen,
            upstream,
            workers,
            timeouts: settings.timeouts.clone(),
            max_request_body,
            max_response_body,
            inbound_tokens,
            allow_anonymous: settings.inbound.allow_anonymous,
            rate_limit: settings.rate_limit.clone(),
            retry: settings.retry.clone(),
            admin_listen,
            status_map,
            key,
            settings,
        })
    }

    /// The effective configuration as TOML, with the key only as a fingerprint.
    pub fn render(&self) -> String {
        let body = toml_string(&self.settings);
        format!(
            "# effective configuration\n# api key: {} (from {})\n{body}",
            self.key.fingerprint(),
            self.key.source()
        )
    }
}

fn validate_rate_limit(r: &RateLimitConfig) -> Result<(), String> {
    if r.per.is_zero() {
        return Err(
            "rate_limit.per: must be greater than 0; write a duration such as \"1m\"".into(),
        );
    }
    for (i, rule) in r.routes.iter().enumerate() {
        let at = format!("rate_limit.routes[{i}] ({:?})", rule.route);
        if rule.route.trim().is_empty() {
            return Err(format!(
                "{at}: route is empty; expected a v1 do value such as \"generate_link\" or a path such as \"/api/marketer/cpc/orders\""
            ));
        }
        if rule.per.is_zero() {
            return Err(format!(
                "{at}: per must be greater than 0; write a duration such as \"5m\""
            ));
        }
        if rule.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(format!(
                "{at}: key is empty; name a body or query field such as \"smartlink_id\", or leave it out"
            ));
        }
    }
    Ok(())
}

fn validate_retry(r: &RetryConfig) -> Result<(), String> {
    if r.max_attempts == 0 {
        return Err("retry.max_attempts: must be at least 1 (1 means no retries)".into());
    }
    if r.base_delay > r.max_delay {
        return Err(format!(
            "retry.base_delay ({}) is longer than retry.max_delay ({}); make base_delay <= max_delay",
            humantime::format_duration(r.base_delay),
            humantime::format_duration(r.max_delay)
        ));
    }
    if !(0.0..=1000.0).contains(&r.budget_percent) {
        return Err(format!(
            "retry.budget_percent: {} is out of range; expected 0 to 1000 (percent of requests)",
            r.budget_percent
        ));
    }
    if r.budget_min_per_sec > 1_000_000 {
        return Err(format!(
            "retry.budget_min_per_sec: {} is out of range; expected 0 to 1000000",
            r.budget_min_per_sec
        ));
    }
    Ok(())
}

fn toml_string(settings: &Settings) -> String {
    toml::to_string(settings).unwrap_or_else(|e| format!("# could not render settings: {e}\n"))
}

/// One line naming the setting, where it came from, the bad value and what is expected.
fn describe(e: figment::Error) -> String {
    use figment::error::Kind;
    let mut lines = Vec::new();
    for e in e {
        let key = e.path.join(".");
        let origin = match e.metadata.as_ref().map(|m| (&m.source, m.name.as_ref())) {
            Some((Some(figment::Source::File(p)), _)) => format!(" in {}", p.display()),
            Some((_, name)) if name.contains("environment") => format!(
                " in environment variable {ENV_PREFIX}{}",
                e.path.join("__").to_ascii_uppercase()
            ),
            Some((_, name)) if name.contains("Serialized") && !e.path.is_empty() => {
                format!(" given as --{}", e.path.join("-"))
            }
            _ => String::new(),
        };
        let what = match &e.kind {
            Kind::UnknownField(..) => format!(
                "unknown setting `{key}`{origin}; see config/default.toml for the valid settings"
            ),
            kind => {
                let last = e.path.last().map(String::as_str).unwrap_or("");
                let hint = match e.path.first().map(String::as_str) {
                    _ if ["per", "max_wait", "base_delay", "max_delay"].contains(&last) => {
                        " (write durations like \"250ms\", \"30s\", \"5m\")"
                    }
                    Some("timeouts") => " (write durations like \"250ms\", \"30s\", \"5m\")",
                    Some("limits") => " (write sizes like \"512KiB\", \"1MiB\")",
                    _ => "",
                };
                format!("bad value for `{key}`{origin}: {kind}{hint}")
            }
        };
        lines.push(format!("invalid configuration: {what}"));
    }
    lines.join("; ")
}
