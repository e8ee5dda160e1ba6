//! The simulator's two time windows: the per-key request budget and the `generate_link` cooldown.
//!
//! Both read a [`Clock`] passed in by the caller, so tests drive them with a manual clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::rate::SimRate;

/// How long `generate_link` refuses a second link for the same Smart Link (documented upstream:
/// one request per campaign every 5 minutes).
pub(crate) const LINK_COOLDOWN: Duration = Duration::from_secs(5 * 60);

/// Above this many remembered smart links, expired entries are dropped on the next insert.
const COOLDOWN_PRUNE_AT: usize = 4096;

/// A refusal, with how long until the same request would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wait(pub Duration);

impl Wait {
    /// Whole seconds to wait, rounded up and never zero, for the `retry_after` body field.
    pub(crate) fn retry_after_secs(self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A fixed-window counter: a window opens at the first request after the previous window ended,
/// lasts `rate.per`, and admits `rate.requests` requests. Refused requests do not count.
///
/// Fixed windows were chosen over GCRA or a sliding log because they are the easiest to predict
/// from a test or a demo ("the 61st request inside the minute is refused, and the refusal says
/// when the minute ends"). The simulator accepts a single API key, so one window is that key's.
#[derive(Debug)]
pub(crate) struct FixedWindow {
    rate: SimRate,
    state: Mutex<Option<WindowState>>,
}

#[derive(Debug, Clone, Copy)]
struct WindowState {
    opened: Duration,
    used: u32,
}

impl FixedWindow {
    pub(crate) fn new(rate: SimRate) -> Self {
        Self {
            rate,
            state: Mutex::new(None),
        }
    }

    /// The budget this window enforces.
    pub(crate) fn rate(&self) -> SimRate {
        self.rate
    }

    /// Counts one request at `now`, or says how long until the current window ends.
    pub(crate) fn check(&self, now: Duration) -> Result<(), Wait> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window = match *guard {
            Some(w) if now < w.opened.saturating_add(self.rate.per) => w,
            _ => WindowState {
                opened: now,
                used: 0,
            },
        };
        if window.used >= self.rate.requests.get() {
            *guard = Some(window);
            let ends = window.opened.saturating_add(self.rate.per);
            return Err(Wait(ends.saturating_sub(now)));
        }
        *guard = Some(WindowState {
            used: window.used + 1,
            ..window
        });
        Ok(())
    }
}

/// Remembers when each Smart Link last produced a link, to refuse another within the cooldown.
#[derive(Debug, Default)]
pub(crate) struct LinkCooldown {
    last: Mutex<HashMap<i64, Duration>>,
}

impl LinkCooldown {
    /// Records a generation for `smartlink_id` at `now`, or says how long until one is allowed.
    /// Only successful generations start a cooldown; refused calls do not extend it.
    pub(crate) fn try_generate(&self, smartlink_id: i64, now: Duration) -> Result<(), Wait> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&at) = last.get(&smartlink_id) {
            let free_at = at.saturating_add(LINK_COOLDOWN);
            if now < free_at {
                return Err(Wait(free_at - now));
            }
        }
        if last.len() >= COOLDOWN_PRUNE_AT {
            last.retain(|_, at| now < at.saturating_add(LINK_COOLDOWN));
        }
        last.insert(smartlink_id, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn three_per_10s() -> FixedWindow {
        FixedWindow::new(SimRate {
            requests: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            per: secs(10),
        })
    }

    #[test]
    fn fixed_window_admits_budget_then_refuses_until_window_ends() {
        let w = three_per_10s();
        assert_eq!(w.check(secs(100)), Ok(()));
        assert_eq!(w.check(secs(101)), Ok(()));
        assert_eq!(w.check(secs(102)), Ok(()));
        assert_eq!(w.check(secs(103)), Err(Wait(secs(7))));
        assert_eq!(
            w.check(Duration::from_millis(109_500)),
            Err(Wait(Duration::from_millis(500)))
        );
        // The window opened at 100 s, so at 110 s a fresh one opens.
        assert_eq!(w.check(secs(110)), Ok(()));
        assert_eq!(w.check(secs(110)), Ok(()));
        assert_eq!(w.check(secs(110)), Ok(()));
        assert_eq!(w.check(secs(119)), Err(Wait(secs(1))));
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(Wait(Duration::from_millis(500)).retry_after_secs(), 1);
        assert_eq!(Wait(Duration::from_millis(7_001)).retry_after_secs(), 8);
        assert_eq!(Wait(secs(7)).retry_after_secs(), 7);
        assert_eq!(Wait(Duration::ZERO).retry_after_secs(), 1);
    }

    #[test]
    fn cooldown_is_per_smartlink_and_lasts_five_minutes() {
        let c = LinkCooldown::default();
        assert_eq!(c.try_generate(7, secs(0)), Ok(()));
        assert_eq!(c.try_generate(7, secs(60)), Err(Wait(secs(240))));
        assert_eq!(c.try_generate(8, secs(60)), Ok(()));
        // A refused call does not extend the window.
        assert_eq!(c.try_generate(7, secs(299)), Err(Wait(secs(1))));
        assert_eq!(c.try_generate(7, secs(300)), Ok(()));
        assert_eq!(c.try_generate(7, secs(301)), Err(Wait(secs(299))));
    }
}
