//! Retry policies for failing steps, and what a step knows about its own attempt.

use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

type Predicate = Arc<dyn Fn(&(dyn Error + 'static)) -> bool + Send + Sync>;
type WaitFn = Arc<dyn Fn(u32, &(dyn Error + 'static)) -> Duration + Send + Sync>;

/// When and how often a failing step runs again. Built by composition:
///
/// ```
/// use std::time::Duration;
/// use workflows::RetryPolicy;
///
/// let policy = RetryPolicy::attempts(5)                       // at most 5 executions in all
///     .exponential(Duration::from_millis(10), 2.0, Duration::from_secs(1))
///     .jitter(0.2)                                           // +-20% on each wait
///     .retry_if(|err| !err.to_string().contains("invalid")); // permanent errors fail at once
///
/// let transient = std::io::Error::other("connection reset");
/// assert!(policy.next_delay(1, &transient).is_some());
/// assert!(policy.next_delay(5, &transient).is_none(), "the fifth attempt was the last");
/// let permanent = std::io::Error::other("invalid input");
/// assert!(policy.next_delay(1, &permanent).is_none());
/// ```
///
/// Besides a number of attempts, a policy can stop on time: after a total time since the
/// first attempt began ([`stop_after`](Self::stop_after)), or when the next wait would end
/// past such a total ([`stop_before`](Self::stop_before)). Its waits can be a chain
/// ([`waits`](Self::waits), the last one repeating) or computed from the attempt number and the
/// error ([`wait_with`](Self::wait_with)):
///
/// ```
/// use std::time::Duration;
/// use workflows::RetryPolicy;
///
/// let s = Duration::from_secs;
/// let policy = RetryPolicy::attempts(10)
///     .waits([s(1), s(5), s(30)])    // 1 s, 5 s, then 30 s each time
///     .stop_before(s(60));           // never wait past one minute in all
/// let err = std::io::Error::other("busy");
/// assert_eq!(policy.next_delay_at(1, &err, s(0)), Some(s(1)));
/// assert_eq!(policy.next_delay_at(2, &err, s(1)), Some(s(5)));
/// assert_eq!(policy.next_delay_at(3, &err, s(6)), Some(s(30)));
/// assert_eq!(policy.next_delay_at(4, &err, s(36)), None, "36 s + 30 s would pass 60 s");
///
/// let by_error = RetryPolicy::attempts(3).wait_with(move |attempt, err| {
///     if err.to_string().contains("busy") { s(u64::from(attempt) * 2) } else { s(0) }
/// });
/// assert_eq!(by_error.next_delay(2, &err), Some(s(4)));
/// ```
///
/// Side effects of failed attempts are not rolled back: a step that retries should be safe to
/// run again. The policy is code, so a snapshot does not hold it; it holds how long each
/// invocation has been trying, so that time-based stops count from its first attempt across a
/// resume.
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    jitter: f64,
    retry_if: Option<Predicate>,
    /// Give up once this long has passed since the first attempt began.
    stop_after: Option<Duration>,
    /// Give up when the next wait would end past this long since the first attempt began.
    stop_before: Option<Duration>,
}

#[derive(Clone)]
enum Backoff {
    Immediate,
    Fixed(Duration),
    Exponential {
        initial: Duration,
        factor: f64,
        max: Duration,
    },
    /// The `n`-th wait is the `n`-th element; the last repeats.
    Chain(Arc<[Duration]>),
    Custom(WaitFn),
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backoff::Immediate => f.write_str("Immediate"),
            Backoff::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            Backoff::Exponential {
                initial,
                factor,
                max,
            } => f
                .debug_struct("Exponential")
                .field("initial", initial)
                .field("factor", factor)
                .field("max", max)
                .finish(),
            Backoff::Chain(waits) => f.debug_tuple("Chain").field(waits).finish(),
            Backoff::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl RetryPolicy {
    /// At most `n` executions in total (the first one included), retrying at once.
    /// `attempts(1)` never retries.
    pub fn attempts(n: u32) -> Self {
        RetryPolicy {
            max_attempts: n.max(1),
            backoff: Backoff::Immediate,
            jitter: 0.0,
            retry_if: None,
            stop_after: None,
            stop_before: None,
        }
    }

    /// Wait `delay` before each retry.
    pub fn fixed(mut self, delay: Duration) -> Self {
        self.backoff = Backoff::Fixed(delay);
        self
    }

    /// Wait `initial` before the first retry, multiplying the wait by `factor` each time,
    /// never beyond `max`.
    pub fn exponential(mut self, initial: Duration, factor: f64, max: Duration) -> Self {
        self.backoff = Backoff::Exponential {
            initial,
            factor: factor.max(1.0),
            max,
        };
        self
    }

    /// Wait each duration of `waits` in turn before the retries, the last one repeating (an
    /// empty chain retries at once).
    pub fn waits(mut self, waits: impl IntoIterator<Item = Duration>) -> Self {
        self.backoff = Backoff::Chain(waits.into_iter().collect());
        self
    }

    /// Wait what `wait` says, given the number of the attempt that failed (from 1) and its
    /// error (the step's own: downcast it).
    pub fn wait_with(
        mut self,
        wait: impl Fn(u32, &(dyn Error + 'static)) -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.backoff = Backoff::Custom(Arc::new(wait));
        self
    }

    /// Give up once `total` has passed since the invocation's first attempt began (counted
    /// when an attempt fails), whatever attempts are left.
    pub fn stop_after(mut self, total: Duration) -> Self {
        self.stop_after = Some(total);
        self
    }

    /// Give up rather than wait past `total` since the invocation's first attempt began: when
    /// the next wait would end later, the step fails now.
    pub fn stop_before(mut self, total: Duration) -> Self {
        self.stop_before = Some(total);
        self
    }

    /// Spread each wait randomly by up to `fraction` (0.0 to 1.0) either way.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// Retry only errors for which `predicate` is true; others fail the step at once.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&(dyn Error + 'static)) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// Whether the policy stops on time ([`stop_after`](Self::stop_after),
    /// [`stop_before`](Self::stop_before)).
    pub fn stops_on_time(&self) -> bool {
        self.stop_after.is_some() || self.stop_before.is_some()
    }

    /// The most executions this policy allows.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// After attempt number `attempt` (1-based) failed with `err`: how long to wait before the
    /// next one, or `None` to give up. Time-based stops count from zero here; the runtime uses
    /// [`next_delay_at`](Self::next_delay_at).
    pub fn next_delay(&self, attempt: u32, err: &(dyn Error + 'static)) -> Option<Duration> {
        self.next_delay_at(attempt, err, Duration::ZERO)
    }

    /// [`next_delay`](Self::next_delay) when `elapsed` has passed since the invocation's first
    /// attempt began.
    pub fn next_delay_at(
        &self,
        attempt: u32,
        err: &(dyn Error + 'static),
        elapsed: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if self.stop_after.is_some_and(|total| elapsed >= total) {
            return None;
        }
        if let Some(pred) = &self.retry_if
            && !pred(err)
        {
            return None;
        }
        let base = match &self.backoff {
            Backoff::Immediate => Duration::ZERO,
            Backoff::Fixed(d) => *d,
            Backoff::Exponential {
                initial,
                factor,
                max,
            } => {
                // In f64, so that large factors or attempt counts saturate instead of overflowing.
                let exp = factor.powi(attempt.saturating_sub(1).min(1024) as i32);
                Duration::try_from_secs_f64(initial.as_secs_f64() * exp)
                    .map_or(*max, |d| d.min(*max))
            }
            Backoff::Chain(waits) => {
                let at = (attempt.saturating_sub(1) as usize).min(waits.len().saturating_sub(1));
                waits.get(at).copied().unwrap_or(Duration::ZERO)
            }
            Backoff::Custom(wait) => wait(attempt, err),
        };
        let delay = self.apply_jitter(base);
        if self
            .stop_before
            .is_some_and(|total| elapsed.saturating_add(delay) > total)
        {
            return None;
        }
        Some(delay)
    }

    fn apply_jitter(&self, base: Duration) -> Duration {
        if self.jitter == 0.0 || base.is_zero() {
            return base;
        }
        // A fresh RandomState is seeded differently each time; enough randomness for jitter.
        let bits = std::hash::RandomState::new().build_hasher().finish();
        let unit = (bits >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor.max(0.0)).unwrap_or(base)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("retry_if", &self.retry_if.is_some())
            .field("stop_after", &self.stop_after)
            .field("stop_before", &self.stop_before)
            .finish()
    }
}

/// What a running step knows about its own attempt, from
/// [`Context::retry_info`](crate::Context::retry_info).
///
/// ```
/// use workflows::RetryInfo;
///
/// let info = RetryInfo {
///     attempt: 2,
///     max_attempts: 3,
///     last_error: Some("timeout".into()),
///     last_failure: None,
/// };
/// assert!(!info.is_last_attempt());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryInfo {
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// The most attempts the step's policy allows (1 without a policy).
    pub max_attempts: u32,
    /// The previous attempt's error, as text.
    pub last_error: Option<String>,
    /// The previous attempt's error itself ([`last_error_as`](Self::last_error_as) gives it
    /// back as the step's own type); `None` on a first attempt, and after a resume from a
    /// snapshot, which keeps only the text.
    pub last_failure: Option<crate::StepError>,
}

impl RetryInfo {
    /// The previous attempt's error as type `E`, if it was one.
    pub fn last_error_as<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.last_failure.as_ref()?.downcast_ref::<E>()
    }

    /// Whether a failure now ends the step for good.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(msg: &str) -> std::io::Error {
        std::io::Error::other(msg.to_owned())
    }

    #[test]
    fn attempts_count_executions() {
        let p = RetryPolicy::attempts(3);
        assert_eq!(p.next_delay(1, &io("x")), Some(Duration::ZERO));
        assert_eq!(p.next_delay(2, &io("x")), Some(Duration::ZERO));
        assert_eq!(p.next_delay(3, &io("x")), None);
        assert_eq!(RetryPolicy::attempts(0).max_attempts(), 1);
    }

    #[test]
    fn exponential_grows_and_caps() {
        let p = RetryPolicy::attempts(10).exponential(
            Duration::from_millis(10),
            2.0,
            Duration::from_millis(50),
        );
        let d: Vec<_> = (1..6).map(|a| p.next_delay(a, &io("x")).unwrap()).collect();
        assert_eq!(d, [10, 20, 40, 50, 50].map(Duration::from_millis).to_vec());
    }

    #[test]
    fn huge_backoffs_saturate_at_the_maximum() {
        let p = RetryPolicy::attempts(u32::MAX).exponential(
            Duration::from_secs(1),
            10.0,
            Duration::from_secs(60),
        );
        assert_eq!(p.next_delay(30, &io("x")), Some(Duration::from_secs(60)));
        assert_eq!(p.next_delay(5000, &io("x")), Some(Duration::from_secs(60)));
        let jittered = p.clone().jitter(1.0).next_delay(5000, &io("x")).unwrap();
        assert!(jittered <= Duration::from_secs(120));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let p = RetryPolicy::attempts(2)
            .fixed(Duration::from_millis(100))
            .jitter(0.5);
        for _ in 0..200 {
            let d = p.next_delay(1, &io("x")).unwrap();
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(150));
        }
    }

    #[test]
    fn predicate_filters_errors() {
        let p = RetryPolicy::attempts(3).retry_if(|e| e.to_string() == "retry me");
        assert!(p.next_delay(1, &io("retry me")).is_some());
        assert!(p.next_delay(1, &io("fatal")).is_none());
    }
}
