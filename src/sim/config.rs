//! Simulator knobs: defaults from WEBQQ.md, a TOML file, then command-line flags.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::SimError;

/// What an idle `poll2` answers after the hold (WEBQQ.md §5.2, §15.2, §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum IdleAnswer {
    /// `{"retcode":0,"result":[]}`: the one answer §16 says all four well-known clients read
    /// correctly. The default.
    EmptyResult,
    /// `{"errmsg":"","retcode":0}`: the E3 idle answer reported in 2016 (§15.2).
    Errmsg,
    /// `{"retcode":102,"errmsg":""}`: the E1/E2 idle answer.
    Retcode102,
}

/// The most events one poll2 answer carries (`poll_batch`).
pub const MAX_POLL_BATCH: usize = 100;

/// Every knob of the simulator. `Default` gives the documented defaults (docs/SIMULATOR.md).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How long `poll2` holds a request without events before the idle answer (§5.1: ~60 s).
    pub hold: Duration,
    /// What the idle answer looks like.
    pub idle_answer: IdleAnswer,
    /// When set, every new QR code is scanned and confirmed after this delay as a fresh
    /// account, so demos and fleet tests need no phone.
    pub auto_scan: Option<Duration>,
    /// How long a QR code stays valid (§3.3: about 120 s), simulated time.
    pub qr_lifetime: Duration,
    /// Hard lifetime of a ptlogin login and everything built on it (§11: ~48 h), simulated
    /// time.
    pub session_lifetime: Duration,
    /// More than this many `get_user_friends2` calls per account inside `friend_list_window`
    /// lock the friend list (§6.1, §8.3: ~15 rapid calls give retcode 6).
    pub friend_list_limit: u32,
    /// Window of the friend-list limit.
    pub friend_list_window: Duration,
    /// How long the friend list answers retcode 6 once locked.
    pub friend_list_lockout: Duration,
    /// Minimum interval between two sends of one account (§8.3 suggests 1 s); faster → 1202.
    /// Zero disables.
    pub send_min_interval: Duration,
    /// Sends to one target per minute before 1202 (§8.3: ~10 to one person); 0 disables.
    pub target_burst_per_min: u32,
    /// Window in which a repeated send (same msg_id, target and content) is acknowledged but
    /// not delivered again, so a client that resends after a crash gets exactly-once.
    pub send_dedup_window: Duration,
    /// Longest accepted message text in UTF-8 bytes (§7.2: ~720).
    pub max_message_bytes: usize,
    /// When set, a poll answers 116 with a new ptwebqq once the current one is this old
    /// (simulated time), as the real service did now and then (§5.2).
    pub ptwebqq_rotation: Option<Duration>,
    /// When set, simulated friends and groups send messages to online accounts at about this
    /// interval (for demos).
    pub chatter: Option<Duration>,
    /// Echo an account's own sends back to its poll (§5.4).
    pub echo: bool,
    /// Contacts generated for an account created without explicit counts.
    pub default_friends: u32,
    /// Groups generated for an account created without explicit counts.
    pub default_groups: u32,
    /// Discussions generated for an account created without explicit counts.
    pub default_discus: u32,
    /// Members of each generated group besides the account itself.
    pub group_members: u32,
    /// At most this many queued events in one poll2 answer, oldest first. 1 (the default) is
    /// the usual answer (§5.1); the real service also put several events in one `result`
    /// when they had queued up (fixture `poll2_messages_2015_scienjus.json`), which clients
    /// that read only `result[0]` lose.
    pub poll_batch: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hold: Duration::from_secs(60),
            idle_answer: IdleAnswer::EmptyResult,
            auto_scan: None,
            qr_lifetime: Duration::from_secs(120),
            session_lifetime: Duration::from_secs(48 * 3600),
            friend_list_limit: 15,
            friend_list_window: Duration::from_secs(60),
            friend_list_lockout: Duration::from_secs(600),
            send_min_interval: Duration::from_millis(1000),
            target_burst_per_min: 10,
            send_dedup_window: Duration::from_secs(600),
            max_message_bytes: 720,
            ptwebqq_rotation: None,
            chatter: None,
            echo: true,
            default_friends: 5,
            default_groups: 2,
            default_discus: 1,
            group_members: 4,
            poll_batch: 1,
        }
    }
}

/// The TOML file form of [`SimConfig`]: every key optional, durations in seconds (`*_secs`)
/// or milliseconds (`*_ms`). Unknown keys are errors so a typo does not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfigFile {
    pub hold_secs: Option<f64>,
    pub idle_answer: Option<IdleAnswer>,
    pub auto_scan_secs: Option<f64>,
    pub qr_lifetime_secs: Option<f64>,
    pub session_lifetime_secs: Option<f64>,
    pub friend_list_limit: Option<u32>,
    pub friend_list_window_secs: Option<f64>,
    pub friend_list_lockout_secs: Option<f64>,
    pub send_min_interval_ms: Option<u64>,
    pub target_burst_per_min: Option<u32>,
    pub send_dedup_window_secs: Option<f64>,
    pub max_message_bytes: Option<usize>,
    pub ptwebqq_rotation_secs: Option<f64>,
    pub chatter_secs: Option<f64>,
    pub echo: Option<bool>,
    pub default_friends: Option<u32>,
    pub default_groups: Option<u32>,
    pub default_discus: Option<u32>,
    pub group_members: Option<u32>,
    pub poll_batch: Option<usize>,
}

/// Seconds from a config value; negative or non-finite values are rejected by the caller.
pub(crate) fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0))
}

impl SimConfig {
    /// Reads a TOML file on top of the defaults.
    pub fn from_toml_file(path: &Path) -> Result<SimConfig, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            SimError::ConfigParse { message, .. } => SimError::ConfigParse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text on top of the defaults.
    pub fn from_toml_str(text: &str) -> Result<SimConfig, SimError> {
        let file: SimConfigFile = toml::from_str(text).map_err(|e| SimError::ConfigParse {
            path: Default::default(),
            message: e.to_string(),
        })?;
        let mut c = SimConfig::default();
        for v in [
            file.hold_secs,
            file.auto_scan_secs,
            file.qr_lifetime_secs,
            file.session_lifetime_secs,
            file.friend_list_window_secs,
            file.friend_list_lockout_secs,
            file.send_dedup_window_secs,
            file.ptwebqq_rotation_secs,
            file.chatter_secs,
        ]
        .into_iter()
        .flatten()
        {
            if !v.is_finite() || v < 0.0 {
                return Err(SimError::ConfigParse {
                    path: Default::default(),
                    message: format!("durations must be finite and >= 0, got {v}"),
                });
            }
        }
        if let Some(v) = file.hold_secs {
            c.hold = secs(v);
        }
        if let Some(v) = file.idle_answer {
            c.idle_answer = v;
        }
        c.auto_scan = file.auto_scan_secs.map(secs);
        if let Some(v) = file.qr_lifetime_secs {
            c.qr_lifetime = secs(v);
        }
        if let Some(v) = file.session_lifetime_secs {
            c.session_lifetime = secs(v);
        }
        if let Some(v) = file.friend_list_limit {
            c.friend_list_limit = v;
        }
        if let Some(v) = file.friend_list_window_secs {
            c.friend_list_window = secs(v);
        }
        if let Some(v) = file.friend_list_lockout_secs {
            c.friend_list_lockout = secs(v);
        }
        if let Some(v) = file.send_min_interval_ms {
            c.send_min_interval = Duration::from_millis(v);
        }
        if let Some(v) = file.target_burst_per_min {
            c.target_burst_per_min = v;
        }
        if let Some(v) = file.send_dedup_window_secs {
            c.send_dedup_window = secs(v);
        }
        if let Some(v) = file.max_message_bytes {
            c.max_message_bytes = v;
        }
        c.ptwebqq_rotation = file.ptwebqq_rotation_secs.map(secs);
        c.chatter = file.chatter_secs.map(secs);
        if let Some(v) = file.echo {
            c.echo = v;
        }
        if let Some(v) = file.default_friends {
            c.default_friends = v.min(500);
        }
        if let Some(v) = file.default_groups {
            c.default_groups = v.min(100);
        }
        if let Some(v) = file.default_discus {
            c.default_discus = v.min(100);
        }
        if let Some(v) = file.group_members {
            c.group_members = v.min(500);
        }
        if let Some(v) = file.poll_batch {
            c.poll_batch = v.clamp(1, MAX_POLL_BATCH);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = SimConfig::from_toml_str("hold_secs = 2\ntarget_burst_per_min = 0\n").unwrap();
        assert_eq!(c.hold, Duration::from_secs(2));
        assert_eq!(c.target_burst_per_min, 0);
        assert_eq!(c.qr_lifetime, Duration::from_secs(120));
        assert!(SimConfig::from_toml_str("hold = 2").is_err());
        assert!(SimConfig::from_toml_str("hold_secs = -1").is_err());
    }
}
