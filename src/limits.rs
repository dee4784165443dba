//! Governor limiters with named quotas: the friend-list guard and the send limits.
//!
//! WebQQ punished speed: more than ~15 `get_user_friends2` calls a minute gave retcode 6 and
//! a lockout; fast or repeated sends drew 1202 and worse (WEBQQ.md §8.3). Every such call
//! asks its limiter first.
//!
//! The limiters run on a clock made of `tokio::time::Instant`, and callers wait with a tokio
//! timer (never governor's `until_ready`, which sleeps on its own timer): so the limits work
//! under paused tokio time in tests, and a wait never blocks an actor.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::LimitsConfig;

/// A point on tokio's clock, so paused time moves the limiters too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, other: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }
    fn saturating_sub(&self, duration: Nanos) -> Self {
        TokioInstant(
            self.0
                .checked_sub(Duration::from(duration))
                .unwrap_or(self.0),
        )
    }
}

/// governor clock reading `tokio::time::Instant::now()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// One named quota.
pub struct Limiter {
    /// Label of `RateLimited` events (`friend_list`, `send`, `send_target`).
    pub name: &'static str,
    inner: Direct,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute.max(1)).expect("max(1)");
    let burst = NonZeroU32::new(burst.max(1)).expect("max(1)");
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Limiter {
    /// `per_minute` calls a minute, `burst` back to back.
    pub fn new(name: &'static str, per_minute: u32, burst: u32) -> Limiter {
        Limiter {
            name,
            inner: RateLimiter::direct_with_clock(quota(per_minute, burst), TokioClock),
        }
    }

    /// Takes a cell if one is free (`Ok`), else says how long to wait before asking again.
    pub fn check(&self) -> Result<(), Duration> {
        self.inner
            .check()
            .map_err(|not| not.wait_time_from(TokioClock.now()))
    }
}

/// The limiters of one account.
pub struct Limits {
    pub friend_list: Limiter,
    pub send: Limiter,
    send_per_minute: u32,
    target_per_minute: u32,
    target_burst: u32,
    /// Sends recorded before these limiters existed (a restart, a relink): no send before
    /// these points, so the account never goes faster than its quotas across them.
    resume_send: Option<tokio::time::Instant>,
    resume_targets: HashMap<String, tokio::time::Instant>,
    /// One limiter per target; pruned when large (an idle limiter is equivalent to a new one).
    targets: HashMap<String, (Limiter, tokio::time::Instant)>,
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> Limits {
        Limits {
            friend_list: Limiter::new(
                "friend_list",
                cfg.friend_list_per_minute,
                cfg.friend_list_burst,
            ),
            send: Limiter::new("send", cfg.send_per_minute, cfg.send_burst),
            send_per_minute: cfg.send_per_minute,
            resume_send: None,
            resume_targets: HashMap::new(),
            target_per_minute: cfg.target_per_minute,
            target_burst: cfg.target_burst,
            targets: HashMap::new(),
        }
    }

    /// Carries over sends made before these limiters were built: `last_send` ago the
    /// account last sent, and `targets` ago each target was last sent to. The next send
    /// waits a full quota interval after each (stricter than the quota's burst, never
    /// looser): a restarted account cannot know which burst cells were still spent.
    pub fn restore(
        &mut self,
        last_send: Option<Duration>,
        targets: impl IntoIterator<Item = (String, Duration)>,
    ) {
        let now = tokio::time::Instant::now();
        let gap =
            |per_minute: u32| Duration::from_millis(60_000u64.div_ceil(per_minute.max(1) as u64));
        if let Some(ago) = last_send {
            let left = gap(self.send_per_minute).saturating_sub(ago);
            if !left.is_zero() {
                self.resume_send = Some(now + left);
            }
        }
        let tgap = gap(self.target_per_minute);
        for (t, ago) in targets {
            let left = tgap.saturating_sub(ago);
            if !left.is_zero() {
                self.resume_targets.insert(t, now + left);
            }
        }
    }

    /// Asks both send limiters for one send to `target`: the account's first, then the
    /// target's. A refusal by the target after the account allowed it wastes one account
    /// cell, which only makes the account slightly slower, never faster than its quota.
    pub fn check_send(&mut self, target: &str) -> Result<(), (&'static str, Duration)> {
        let now = tokio::time::Instant::now();
        if self.targets.len() > 1024 {
            // A limiter untouched for a minute is full again: forgetting it changes nothing.
            self.targets
                .retain(|_, (_, used)| now.duration_since(*used) < Duration::from_secs(60));
        }
        if let Some(at) = self.resume_send {
            if at > now {
                return Err(("send", at - now));
            }
            self.resume_send = None;
        }
        if let Some(at) = self.resume_targets.get(target).copied() {
            if at > now {
                return Err(("send_target", at - now));
            }
            self.resume_targets.remove(target);
        }
        self.send.check().map_err(|w| ("send", w))?;
        let (pm, b) = (self.target_per_minute, self.target_burst);
        let entry = self
            .targets
            .entry(target.to_string())
            .or_insert_with(|| (Limiter::new("send_target", pm, b), now));
        entry.1 = now;
        entry.0.check().map_err(|w| ("send_target", w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn friend_list_default_stays_under_fifteen_a_minute() {
        let l = Limits::new(&LimitsConfig::default());
        // Hammer it for 10 simulated minutes: in every 60 s window, at most 15 calls pass.
        let mut passed: Vec<tokio::time::Instant> = Vec::new();
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(600) {
            match l.friend_list.check() {
                Ok(()) => passed.push(tokio::time::Instant::now()),
                Err(wait) => tokio::time::sleep(wait.min(Duration::from_millis(500))).await,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (i, t) in passed.iter().enumerate() {
            let in_window = passed[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(60))
                .count();
            assert!(in_window <= 15, "{in_window} friend-list calls within 60 s");
        }
        assert!(
            passed.len() >= 75,
            "the limiter still lets calls through: {}",
            passed.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn restored_sends_hold_back_the_next_one() {
        let mut l = Limits::new(&LimitsConfig {
            send_per_minute: 20,
            send_burst: 3,
            target_per_minute: 6,
            target_burst: 2,
            ..LimitsConfig::default()
        });
        // Last send 1 s ago (to buddy:1), buddy:2 12 s ago: 3 s between sends, 10 s per target.
        l.restore(
            Some(Duration::from_secs(1)),
            [
                ("buddy:1".to_string(), Duration::from_secs(1)),
                ("buddy:2".to_string(), Duration::from_secs(12)),
            ],
        );
        let (name, wait) = l.check_send("buddy:2").unwrap_err();
        assert_eq!(name, "send");
        assert_eq!(wait, Duration::from_secs(2));
        tokio::time::sleep(wait).await;
        let (name, wait) = l.check_send("buddy:1").unwrap_err();
        assert_eq!(name, "send_target");
        assert_eq!(wait, Duration::from_secs(7));
        assert!(l.check_send("buddy:2").is_ok());
        tokio::time::sleep(wait).await;
        assert!(l.check_send("buddy:1").is_ok());
        // Nothing recorded long ago holds anything back.
        let mut l = Limits::new(&LimitsConfig::default());
        l.restore(Some(Duration::from_secs(3600)), []);
        assert!(l.check_send("buddy:1").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn send_limits_wait_is_reported_and_respected() {
        let mut l = Limits::new(&LimitsConfig {
            send_per_minute: 60,
            send_burst: 1,
            target_per_minute: 2,
            target_burst: 1,
            ..LimitsConfig::default()
        });
        assert!(l.check_send("buddy:1").is_ok());
        let (name, wait) = l.check_send("buddy:2").unwrap_err();
        assert_eq!(name, "send");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        tokio::time::sleep(wait).await;
        assert!(l.check_send("buddy:2").is_ok());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (name, wait) = l.check_send("buddy:1").unwrap_err();
        assert_eq!(name, "send_target");
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        tokio::time::sleep(wait).await;
        assert!(l.check_send("buddy:1").is_ok());
    }
}
