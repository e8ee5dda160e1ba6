//! Time sources for the simulator's windows: the real monotonic clock and a manual one for tests.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic time source.
///
/// Every time window in the simulator (the per-key request rate, the `generate_link` cooldown)
/// reads the clock through this trait, so tests can swap in a [`ManualClock`] and move time
/// forward with [`ManualClock::advance`] instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// Time elapsed since an arbitrary but fixed origin. Never goes backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock ([`Instant`]), measured from the first time any `SystemClock` is read.
///
/// This is what `simulate` and `demo` use; it is unaffected by wall-clock jumps.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that only moves when told to, so time-dependent tests are exact and never sleep.
///
/// Share it with the simulator as an `Arc<ManualClock>` (it coerces to `Arc<dyn Clock>`) and keep
/// a clone in the test to call [`ManualClock::advance`].
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at its origin (`now() == 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `d` (saturating at about 584 years, far beyond any test).
    pub fn advance(&self, d: Duration) {
        let step = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update with a closure that always returns Some cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(step))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(90));
        clock.advance(Duration::from_millis(500));
        assert_eq!(clock.now(), Duration::from_millis(90_500));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
    }
}
