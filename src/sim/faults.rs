//! The fault queue (`POST /sim/faults`): answers the next matching requests with a retcode,
//! an HTTP status, a delay or a dropped connection, or delivers the next poll event twice.
//!
//! Faults are matched in the order they were queued; each applies to `count` requests.

use serde::Deserialize;
use serde_json::Value;

/// Faults kept at most (a runaway tool cannot grow memory without bound).
pub const MAX_FAULTS: usize = 10_000;

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this retcode in the endpoint's real error shape.
    Retcode(i64),
    /// Serve the request normally (a send is delivered), then answer with this retcode: the
    /// real service's "1202 but delivered anyway" (§8.2).
    RetcodeAfterServing(i64),
    /// Answer with this HTTP status and no protocol body (gateway errors, §2).
    HttpStatus(u16),
    /// Wait this long, then serve the request normally.
    DelayMs(u64),
    /// Close the connection without an answer.
    Drop,
    /// Deliver the next poll event twice (two consecutive answers, same msg_id).
    Duplicate,
}

/// A queued fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `None` matches every account.
    pub qq: Option<u64>,
    /// Endpoint name (`poll2`, `send_buddy_msg2`, ...) or `*`.
    pub endpoint: String,
    pub action: FaultAction,
    pub remaining: u32,
}

/// Body of `POST /sim/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default)]
    pub qq: Option<u64>,
    pub endpoint: String,
    #[serde(default)]
    pub retcode: Option<i64>,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub drop: Option<bool>,
    #[serde(default)]
    pub duplicate: Option<bool>,
    #[serde(default)]
    pub count: Option<u32>,
    /// With `retcode`: serve the request first (deliver the send), then answer the retcode.
    #[serde(default)]
    pub deliver: Option<bool>,
}

impl FaultRequest {
    /// Validates that exactly one action is given.
    pub fn into_fault(self) -> Result<Fault, String> {
        let mut actions = Vec::new();
        if let Some(r) = self.retcode {
            actions.push(if self.deliver == Some(true) {
                FaultAction::RetcodeAfterServing(r)
            } else {
                FaultAction::Retcode(r)
            });
        } else if self.deliver.is_some() {
            return Err("deliver goes with retcode".into());
        }
        if let Some(s) = self.http_status {
            if !(100..=599).contains(&s) {
                return Err("http_status must be 100..=599".into());
            }
            actions.push(FaultAction::HttpStatus(s));
        }
        if let Some(d) = self.delay_ms {
            actions.push(FaultAction::DelayMs(d.min(600_000)));
        }
        if self.drop == Some(true) {
            actions.push(FaultAction::Drop);
        }
        if self.duplicate == Some(true) {
            actions.push(FaultAction::Duplicate);
        }
        if actions.len() != 1 {
            return Err(
                "give exactly one of retcode, http_status, delay_ms, drop, duplicate".into(),
            );
        }
        if self.endpoint.is_empty() {
            return Err("endpoint must not be empty".into());
        }
        Ok(Fault {
            qq: self.qq,
            endpoint: self.endpoint,
            action: actions.remove(0),
            remaining: self.count.unwrap_or(1).max(1),
        })
    }
}

/// Longest outage `POST /sim/outage` accepts (one hour).
pub const MAX_OUTAGE_SECS: f64 = 3600.0;

/// Body of `POST /sim/outage`: `{"seconds":N,"mode":"drop"}` or `{"seconds":N,"http_status":502}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageRequest {
    pub seconds: f64,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
}

impl OutageRequest {
    /// The action every protocol request gets during the outage, and its length.
    pub fn validate(&self) -> Result<(FaultAction, std::time::Duration), String> {
        if !self.seconds.is_finite() || self.seconds <= 0.0 || self.seconds > MAX_OUTAGE_SECS {
            return Err(format!("seconds must be > 0 and <= {MAX_OUTAGE_SECS}"));
        }
        let action = match (self.mode.as_deref(), self.http_status) {
            (Some("drop"), None) => FaultAction::Drop,
            (None, Some(s)) if (100..=599).contains(&s) => FaultAction::HttpStatus(s),
            (None, Some(_)) => return Err("http_status must be 100..=599".into()),
            (Some(m), None) => {
                return Err(format!("unknown mode {m:?} (the one mode is \"drop\")"))
            }
            _ => return Err("give exactly one of mode \"drop\" or http_status".into()),
        };
        Ok((action, std::time::Duration::from_secs_f64(self.seconds)))
    }
}

/// A whole-service outage: until `until` (wall time: an outage is about real clients timing
/// out, not the simulated clock), every protocol request gets `action`.
#[derive(Debug, Clone)]
pub struct Outage {
    pub until: std::time::Instant,
    pub action: FaultAction,
}

/// The queue, and the outage in force if any.
#[derive(Debug, Default)]
pub struct Faults {
    list: Vec<Fault>,
    outage: Option<Outage>,
}

impl Faults {
    /// Queues a fault; false when the queue is full.
    pub fn push(&mut self, f: Fault) -> bool {
        if self.list.len() >= MAX_FAULTS {
            return false;
        }
        self.list.push(f);
        true
    }

    fn take_where(&mut self, pred: impl Fn(&Fault) -> bool) -> Option<FaultAction> {
        let i = self.list.iter().position(pred)?;
        let f = &mut self.list[i];
        let action = f.action.clone();
        f.remaining -= 1;
        if f.remaining == 0 {
            self.list.remove(i);
        }
        Some(action)
    }

    /// Starts (or replaces) an outage of every protocol endpoint.
    pub fn start_outage(&mut self, action: FaultAction, len: std::time::Duration) {
        self.outage = Some(Outage {
            until: std::time::Instant::now() + len,
            action,
        });
    }

    /// The outage in force now, if any (an ended one is forgotten).
    pub fn outage(&mut self) -> Option<&Outage> {
        if self
            .outage
            .as_ref()
            .is_some_and(|o| o.until <= std::time::Instant::now())
        {
            self.outage = None;
        }
        self.outage.as_ref()
    }

    /// Empties the queue and ends an outage (`DELETE /sim/faults`); returns how many queued
    /// faults were removed.
    pub fn clear(&mut self) -> usize {
        self.outage = None;
        std::mem::take(&mut self.list).len()
    }

    /// The request-level fault for this request, if any (never `Duplicate`). An outage in
    /// force wins over the queue, and consumes nothing from it.
    pub fn take(&mut self, qq: Option<u64>, endpoint: &str) -> Option<FaultAction> {
        if let Some(o) = self.outage() {
            return Some(o.action.clone());
        }
        self.take_where(|f| {
            f.action != FaultAction::Duplicate
                && (f.endpoint == "*" || f.endpoint == endpoint)
                && (f.qq.is_none() || f.qq == qq)
        })
    }

    /// Whether the event about to be delivered to `qq` must be delivered twice.
    pub fn take_duplicate(&mut self, qq: u64) -> bool {
        self.take_where(|f| {
            f.action == FaultAction::Duplicate
                && (f.endpoint == "*" || f.endpoint == "poll2")
                && (f.qq.is_none() || f.qq == Some(qq))
        })
        .is_some()
    }

    /// Pending faults, for `GET /sim/faults`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.list
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "qq": f.qq,
                        "endpoint": f.endpoint,
                        "action": format!("{:?}", f.action),
                        "remaining": f.remaining,
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> FaultRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn counts_and_matching() {
        let mut q = Faults::default();
        q.push(
            req(serde_json::json!({"qq":1,"endpoint":"poll2","retcode":121,"count":2}))
                .into_fault()
                .unwrap(),
        );
        assert_eq!(q.take(Some(2), "poll2"), None);
        assert_eq!(q.take(Some(1), "send_buddy_msg2"), None);
        assert_eq!(q.take(Some(1), "poll2"), Some(FaultAction::Retcode(121)));
        assert_eq!(q.take(Some(1), "poll2"), Some(FaultAction::Retcode(121)));
        assert_eq!(q.take(Some(1), "poll2"), None);
    }

    #[test]
    fn outage_wins_then_ends_and_clear_empties() {
        let mut q = Faults::default();
        q.push(
            req(serde_json::json!({"endpoint":"poll2","retcode":121}))
                .into_fault()
                .unwrap(),
        );
        let o: OutageRequest =
            serde_json::from_value(serde_json::json!({"seconds":0.2,"http_status":502})).unwrap();
        let (a, len) = o.validate().unwrap();
        q.start_outage(a, len);
        assert_eq!(
            q.take(Some(1), "login2"),
            Some(FaultAction::HttpStatus(502))
        );
        assert_eq!(q.take(Some(1), "poll2"), Some(FaultAction::HttpStatus(502)));
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(q.take(Some(1), "poll2"), Some(FaultAction::Retcode(121)));
        q.start_outage(FaultAction::Drop, std::time::Duration::from_secs(60));
        assert_eq!(q.clear(), 0);
        assert_eq!(q.take(Some(1), "poll2"), None);
        for bad in [
            serde_json::json!({"seconds":5}),
            serde_json::json!({"seconds":5,"mode":"drop","http_status":502}),
            serde_json::json!({"seconds":5,"mode":"hang"}),
            serde_json::json!({"seconds":0,"mode":"drop"}),
            serde_json::json!({"seconds":5,"http_status":99}),
        ] {
            let o: OutageRequest = serde_json::from_value(bad.clone()).unwrap();
            assert!(o.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_is_separate_and_one_action_required() {
        let mut q = Faults::default();
        q.push(
            req(serde_json::json!({"qq":null,"endpoint":"poll2","duplicate":true}))
                .into_fault()
                .unwrap(),
        );
        assert_eq!(q.take(Some(5), "poll2"), None);
        assert!(q.take_duplicate(5));
        assert!(!q.take_duplicate(5));
        assert!(req(serde_json::json!({"endpoint":"poll2"}))
            .into_fault()
            .is_err());
        assert!(
            req(serde_json::json!({"endpoint":"poll2","retcode":1,"drop":true}))
                .into_fault()
                .is_err()
        );
    }
}
