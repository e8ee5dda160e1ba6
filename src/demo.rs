//! The `demo` command: the built-in simulator on a free loopback port and the proxy in front of
//! it, in one runtime, so the proxy can be tried with no key and no network.
//!
//! [`Demo::bind`] does everything that can fail before serving (both listeners, the proxy's
//! configuration), so the binary can report a bad setting or a taken port and exit before it
//! prints the example commands; [`Demo::run`] then serves until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, ConfigError, Overrides};
use crate::secret::{ApiKey, KeySource};
use crate::simulator::{self, SimulatorConfig};

/// Where the demo's simulator listens: loopback, on a port the OS picks, so it never collides
/// with anything and is never reachable from outside.
const SIMULATOR_LISTEN: &str = "127.0.0.1:0";

/// The Smart Link the printed `generate_link` example asks for.
const EXAMPLE_SMARTLINK: u32 = 42;

/// Why the demo could not start. [`DemoError::Config`] is the user's to fix (exit code 2); the
/// others are run-time failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The proxy's settings (`OTPROXY_*`, `--listen`) are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The proxy's listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; pick another address with --listen or OTPROXY_LISTEN"
    )]
    ProxyBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// No loopback port for the simulator.
    #[error("cannot start the simulator on {SIMULATOR_LISTEN}: {0}")]
    SimulatorBind(std::io::Error),
}

/// Both servers, bound and configured but not yet serving.
pub struct Demo {
    simulator: TcpListener,
    simulator_addr: SocketAddr,
    simulator_config: SimulatorConfig,
    proxy: TcpListener,
    proxy_addr: SocketAddr,
    config: Arc<Config>,
}

impl Demo {
    /// Binds the simulator on a free loopback port, then configures the proxy from the built-in
    /// defaults, `OTPROXY_*` variables and `listen` (the `--listen` flag), with the simulator as
    /// its upstream and the simulator's key, and binds it.
    pub async fn bind(listen: Option<String>) -> Result<Self, DemoError> {
        let simulator = TcpListener::bind(SIMULATOR_LISTEN)
            .await
            .map_err(DemoError::SimulatorBind)?;
        let simulator_addr = simulator.local_addr().map_err(DemoError::SimulatorBind)?;
        let simulator_config = SimulatorConfig::default();
        let overrides = Overrides {
            listen,
            upstream: Some(format!("http://{simulator_addr}")),
        };
        let settings = Config::load_settings(None, &overrides)?;
        // The key comes from the simulator's own config, so the two cannot disagree.
        let key =
            ApiKey::new(&simulator_config.key, KeySource::Inline).map_err(ConfigError::from)?;
        let config = Config::validate(settings, key)?;
        let proxy =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| DemoError::ProxyBind {
                    addr: config.listen,
                    source,
                })?;
        let proxy_addr = proxy.local_addr().map_err(|source| DemoError::ProxyBind {
            addr: config.listen,
            source,
        })?;
        Ok(Self {
            simulator,
            simulator_addr,
            simulator_config,
            proxy,
            proxy_addr,
            config: Arc::new(config),
        })
    }

    /// The address the proxy is bound to (the real port when `--listen` asked for port 0).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    /// The address the simulator is bound to.
    pub fn simulator_addr(&self) -> SocketAddr {
        self.simulator_addr
    }

    /// The proxy's validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the binary prints: where things listen and three commands to paste, with the real
    /// proxy address in them.
    pub fn instructions(&self) -> String {
        let proxy = format!("http://{}", self.proxy_addr);
        // `-w '\n'` only ends the output with a newline: the API's bodies have none.
        let v1 = |action: &str| format!("'{proxy}/api/marketer?do={action}'");
        let generate = format!(
            "curl -s -w ' -> HTTP %{{http_code}}\\n' -X POST {} -d 'smartlink_id={EXAMPLE_SMARTLINK}'",
            v1("generate_link")
        );
        format!(
            "onlytraffic-proxy demo: the proxy listens on {proxy}, in front of the built-in \
             OnlyTraffic API simulator (http://{sim}, key {key:?}, rate {rate}).\n\
             Clients need no key: the proxy adds the simulator's. Try, from another terminal:\n\
             \n\
             # 1. List campaigns (v1, JSON body): HTTP 200\n\
             curl -s -w '\\n' -X POST {campaigns} -H 'content-type: application/json' -d '{{\"limit\":3}}'\n\
             \n\
             # 2. An invalid parameter (v2, limit above 1000): HTTP 422, the API's error body unchanged\n\
             curl -s -i -w '\\n' '{proxy}/api/marketer/revshare/campaigns?limit=5000'\n\
             \n\
             # 3. generate_link twice for one Smart Link (form body): HTTP 200, then 429 (one link per 5 minutes)\n\
             {generate}; {generate}\n\
             \n\
             Ctrl-C stops both.\n",
            sim = self.simulator_addr,
            key = self.simulator_config.key,
            rate = self.simulator_config.rate,
            campaigns = v1("campaigns"),
        )
    }

    /// Serves both until `shutdown` resolves. The proxy stops first and drains its in-flight
    /// requests, which still need the simulator; only then is the simulator stopped.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_simulator, simulator_stopped) = oneshot::channel::<()>();
        let simulator = tokio::spawn(simulator::serve(
            self.simulator,
            self.simulator_config,
            async move {
                let _ = simulator_stopped.await;
            },
        ));
        let proxied = crate::run(self.proxy, self.config, shutdown).await;
        let _ = stop_simulator.send(());
        let simulated = simulator
            .await
            .map_err(|e| std::io::Error::other(format!("the simulator task failed: {e}")))?;
        proxied.and(simulated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn instructions_carry_the_bound_proxy_address() {
        let demo = Demo::bind(Some("127.0.0.1:0".into()))
            .await
            .expect("demo binds on loopback");
        let proxy = demo.proxy_addr();
        assert_ne!(proxy.port(), 0);
        assert_ne!(demo.simulator_addr().port(), 0);
        assert_eq!(
            demo.config().upstream.to_string(),
            format!("http://{}", demo.simulator_addr())
        );
        let text = demo.instructions();
        let curls: Vec<&str> = text.lines().filter(|l| l.starts_with("curl ")).collect();
        assert_eq!(curls.len(), 3, "{text}");
        for line in &curls {
            assert!(
                line.contains(&format!("'http://{proxy}/api/marketer")),
                "{line}"
            );
        }
        assert_eq!(curls[2].matches("do=generate_link").count(), 2, "{text}");
    }
}
