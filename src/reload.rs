//! Key rotation without restart: when the key comes from `ONLYTRAFFIC_API_KEY_FILE`, a change
//! in the file's directory (Kubernetes and Docker swap secrets through a symlink, so the file
//! itself is not what changes) or a SIGHUP re-reads it. A file that is empty or unreadable keeps
//! the old key. Only fingerprints are logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::secret::{ApiKey, KeyStore};

/// Quiet time after a file event before reading: a write or a swap is several events.
const SETTLE: Duration = Duration::from_millis(50);

/// Starts watching `path` (and SIGHUP) in the background for as long as the runtime lives.
pub fn spawn(path: PathBuf, keys: Arc<KeyStore>, metrics: Arc<Metrics>) {
    let (tx, mut events) = mpsc::unbounded_channel::<()>();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the key ourselves raises access events; only changes matter.
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %e, dir = %dir.display(), "cannot watch the key file's directory; reload with SIGHUP");
            None
        }
    };
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP");
            None
        }
    };
    tokio::spawn(async move {
        // Keeps the watcher alive as long as the task.
        let _watcher = watcher;
        loop {
            let forced = tokio::select! {
                event = events.recv() => match event {
                    Some(()) => false,
                    None => std::future::pending().await,
                },
                _ = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            if !forced {
                // Let the burst of events of one swap settle.
                while let Ok(Some(())) = tokio::time::timeout(SETTLE, events.recv()).await {}
            }
            reload(&path, &keys, &metrics, forced);
        }
    });
}

/// Reads the file and swaps the key if it changed (always counts on SIGHUP).
fn reload(path: &Path, keys: &KeyStore, metrics: &Metrics, forced: bool) {
    match ApiKey::from_file(path.to_owned()) {
        Ok(key) => {
            let old = keys.current();
            if !forced && key.header_value() == old.header_value() {
                return;
            }
            tracing::info!(
                old = %old.fingerprint(),
                new = %key.fingerprint(),
                "API key reloaded; requests from now on use the new key"
            );
            keys.replace(key);
            metrics.key_reload(true);
        }
        Err(e) => {
            tracing::error!(
                error = %e,
                kept = %keys.current().fingerprint(),
                "API key reload failed; keeping the current key"
            );
            metrics.key_reload(false);
        }
    }
}

/// With the key from `ONLYTRAFFIC_API_KEY` there is nothing to reload; SIGHUP must still not
/// stop the proxy (its default action), so it is answered with a log line.
pub fn spawn_hangup_notice() {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::warn!(
                "SIGHUP: the key comes from ONLYTRAFFIC_API_KEY and cannot be reloaded; use ONLYTRAFFIC_API_KEY_FILE to rotate keys without a restart"
            );
        }
    });
}
