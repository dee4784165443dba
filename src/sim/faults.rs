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

/// The queue.
#[derive(Debug, Default)]
pub struct Faults {
    list: Vec<Fault>,
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

    /// The request-level fault for this request, if any (never `Duplicate`).
    pub fn take(&mut self, qq: Option<u64>, endpoint: &str) -> Option<FaultAction> {
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
