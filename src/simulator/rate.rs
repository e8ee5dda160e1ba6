//! [`SimRate`]: the simulator's per-key request budget, written `N/PERIOD` (e.g. `60/1m`).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// How many requests one API key may make per period before the simulator answers
/// `error_code: 429`.
///
/// The real partner API documents a 429 code but no quota, so the budget is configurable; the
/// types make a zero budget or a zero period unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimRate {
    /// Requests admitted per window.
    pub requests: NonZeroU32,
    /// Length of the window (never zero once parsed).
    pub per: Duration,
}

/// Why a `N/PERIOD` rate string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSimRateError {
    /// No `/` separating the count from the period.
    #[error("invalid rate {input:?}: expected N/PERIOD, e.g. 60/1m")]
    MissingSlash {
        /// The rejected text.
        input: String,
    },
    /// The count is not a positive integer.
    #[error(
        "invalid rate {input:?}: request count must be a positive integer; expected N/PERIOD, e.g. 60/1m"
    )]
    BadCount {
        /// The rejected text.
        input: String,
    },
    /// The period is not a humantime duration (`30s`, `1m`, `1h`, `1h 30m`).
    #[error("invalid rate {input:?}: bad period ({reason}); expected N/PERIOD, e.g. 60/1m")]
    BadPeriod {
        /// The rejected text.
        input: String,
        /// What humantime said about the period.
        reason: String,
    },
    /// The period parsed but is zero.
    #[error(
        "invalid rate {input:?}: period must be longer than zero; expected N/PERIOD, e.g. 60/1m"
    )]
    ZeroPeriod {
        /// The rejected text.
        input: String,
    },
}

impl SimRate {
    /// A rate of `requests` per `per`; `None` if `per` is zero (a zero window admits nothing sane).
    pub fn new(requests: NonZeroU32, per: Duration) -> Option<Self> {
        (!per.is_zero()).then_some(Self { requests, per })
    }
}

impl Default for SimRate {
    /// 60 requests per minute, the same as [`super::DEFAULT_RATE`].
    fn default() -> Self {
        Self {
            requests: NonZeroU32::new(60).unwrap_or(NonZeroU32::MIN),
            per: Duration::from_secs(60),
        }
    }
}

impl FromStr for SimRate {
    type Err = ParseSimRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = s.to_owned();
        let Some((count, period)) = s.trim().split_once('/') else {
            return Err(ParseSimRateError::MissingSlash { input });
        };
        let requests =
            count
                .trim()
                .parse::<NonZeroU32>()
                .map_err(|_| ParseSimRateError::BadCount {
                    input: input.clone(),
                })?;
        let per =
            humantime::parse_duration(period.trim()).map_err(|e| ParseSimRateError::BadPeriod {
                input: input.clone(),
                reason: e.to_string(),
            })?;
        Self::new(requests, per).ok_or(ParseSimRateError::ZeroPeriod { input })
    }
}

impl fmt::Display for SimRate {
    /// Formats back into the `N/PERIOD` form `FromStr` accepts, e.g. `60/1m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.requests,
            humantime::format_duration(self.per)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u32, secs: u64) -> SimRate {
        SimRate {
            requests: NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
            per: Duration::from_secs(secs),
        }
    }

    #[test]
    fn parses_good_rates() {
        assert_eq!("60/1m".parse::<SimRate>(), Ok(rate(60, 60)));
        assert_eq!("10/30s".parse::<SimRate>(), Ok(rate(10, 30)));
        assert_eq!("5/1h".parse::<SimRate>(), Ok(rate(5, 3600)));
        assert_eq!(" 100 / 1h 30m ".parse::<SimRate>(), Ok(rate(100, 5400)));
        assert_eq!("1/1day".parse::<SimRate>(), Ok(rate(1, 86_400)));
    }

    #[test]
    fn default_matches_default_rate_constant() {
        assert_eq!(
            super::super::DEFAULT_RATE.parse::<SimRate>(),
            Ok(SimRate::default())
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["60/1m", "10/30s", "5/1h", "7/1h 30m"] {
            let parsed: SimRate = text.parse().unwrap_or_default();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parsed.to_string().parse::<SimRate>(), Ok(parsed));
        }
    }

    #[test]
    fn rejects_bad_rates_with_clear_text() {
        for bad in [
            "", "60", "60m", "/1m", "x/1m", "0/1m", "-1/1m", "60/", "60/abc", "60/0s", "60/1m/2",
        ] {
            let err = bad
                .parse::<SimRate>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| format!("{bad:?} was accepted"));
            assert!(
                err.contains("expected N/PERIOD, e.g. 60/1m"),
                "{bad:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn error_variants_say_what_was_wrong() {
        assert!(matches!(
            "60".parse::<SimRate>(),
            Err(ParseSimRateError::MissingSlash { .. })
        ));
        assert!(matches!(
            "0/1m".parse::<SimRate>(),
            Err(ParseSimRateError::BadCount { .. })
        ));
        assert!(matches!(
            "5/soon".parse::<SimRate>(),
            Err(ParseSimRateError::BadPeriod { .. })
        ));
        assert!(matches!(
            "5/0s".parse::<SimRate>(),
            Err(ParseSimRateError::ZeroPeriod { .. })
        ));
    }

    #[test]
    fn new_rejects_zero_period() {
        assert_eq!(SimRate::new(NonZeroU32::MIN, Duration::ZERO), None);
    }
}
