//! What an account does with the messages it receives: the handler seam.
//!
//! A poll2 event becomes an [`Incoming`] (our own stable, serializable shape, stored in the
//! inbox before any handler sees it), and the account's [`Handler`] turns it into replies,
//! which go through the durable outbox like every other outgoing message. The built-in
//! handlers are `echo` (the demo bot) and `log`; a later HTTP API or event stream plugs in
//! here as another `Handler`.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::protocol::{PollEvent, Target};
use crate::store::DedupKey;

/// Which conversation a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Buddy,
    Group,
    Discu,
    Sess,
}

impl Kind {
    /// The label used by events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Buddy => "buddy",
            Kind::Group => "group",
            Kind::Discu => "discu",
            Kind::Sess => "sess",
        }
    }
}

/// A received message, as handlers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    pub kind: Kind,
    /// poll2's `poll_type` (part of the dedup key).
    pub poll_type: String,
    /// The conversation: friend uin, group gid or discussion did (pseudo ids of this session).
    pub source: u64,
    /// Who wrote it (friend uin or member uin).
    pub sender: u64,
    pub msg_id: u64,
    /// Server time, unix seconds.
    pub time: u64,
    /// Decoded text, faces as `[face:N]`.
    pub text: String,
    /// The account's own message coming back (WEBQQ.md §5.4): never answered, or two echo
    /// bots (or one bot and its own echo) would talk forever.
    pub self_echo: bool,
}

impl Incoming {
    /// Where an answer goes. Temporary sessions (`sess`) get none: sending them was blocked
    /// from 2016 (WEBQQ.md §8.1).
    pub fn reply_target(&self) -> Option<Target> {
        match self.kind {
            Kind::Buddy => Some(Target::Buddy(self.source)),
            Kind::Group => Some(Target::Group(self.source)),
            Kind::Discu => Some(Target::Discu(self.source)),
            Kind::Sess => None,
        }
    }

    /// Its identity for deduplication (WEBQQ.md §5.4).
    pub fn dedup_key(&self) -> DedupKey {
        DedupKey {
            poll_type: self.poll_type.clone(),
            source: self.source,
            msg_id: self.msg_id,
        }
    }
}

/// What a poll2 event means to the account.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    Message(Incoming),
    /// Forced offline (`kick_message`).
    Kick(String),
    /// Everything else (status changes, typing, files...): not for handlers yet.
    Other(&'static str),
}

/// Turns a poll2 event into what the account acts on.
pub fn decode(ev: &PollEvent) -> Decoded {
    let msg = |kind, source, sender, msg_id, time, text: String, self_echo| {
        Decoded::Message(Incoming {
            kind,
            poll_type: ev.poll_type().to_string(),
            source,
            sender,
            msg_id,
            time,
            text,
            self_echo,
        })
    };
    match ev {
        PollEvent::Message(m) => msg(
            Kind::Buddy,
            m.from_uin,
            m.from_uin,
            m.msg_id,
            m.time,
            m.content.text(),
            m.self_echo,
        ),
        PollEvent::GroupMessage(m) => msg(
            Kind::Group,
            m.gid,
            m.send_uin,
            m.msg_id,
            m.time,
            m.content.text(),
            m.self_echo,
        ),
        PollEvent::DiscuMessage(m) => msg(
            Kind::Discu,
            m.did,
            m.send_uin,
            m.msg_id,
            m.time,
            m.content.text(),
            m.self_echo,
        ),
        PollEvent::SessMessage(m) => msg(
            Kind::Sess,
            m.from_uin,
            m.from_uin,
            m.msg_id,
            m.time,
            m.content.text(),
            m.self_echo,
        ),
        PollEvent::Kick { reason, .. } => Decoded::Kick(reason.clone()),
        PollEvent::Unknown(v) => decode_raw(v),
        other => Decoded::Other(other.poll_type()),
    }
}

/// Decodes the raw `{"poll_type","value"}` shape (WEBQQ.md §5.3) for events the client
/// hands over undecoded.
pub fn decode_raw(v: &serde_json::Value) -> Decoded {
    let pt = v.get("poll_type").and_then(|p| p.as_str()).unwrap_or("");
    let val = v.get("value").cloned().unwrap_or_default();
    let u = |k: &str| val.get(k).and_then(|x| x.as_u64());
    let (kind, source, sender) = match pt {
        "message" => (Kind::Buddy, u("from_uin"), u("from_uin")),
        "group_message" => (Kind::Group, u("from_uin"), u("send_uin")),
        "discu_message" => (Kind::Discu, u("did").or(u("from_uin")), u("send_uin")),
        "sess_message" => (Kind::Sess, u("from_uin"), u("from_uin")),
        "kick_message" => {
            let reason = val
                .get("reason")
                .and_then(|r| r.as_str())
                .unwrap_or("kicked")
                .to_string();
            return Decoded::Kick(reason);
        }
        _ => return Decoded::Other("other"),
    };
    let (Some(source), Some(msg_id)) = (source, u("msg_id")) else {
        return Decoded::Other("malformed");
    };
    Decoded::Message(Incoming {
        kind,
        poll_type: pt.to_string(),
        source,
        sender: sender.unwrap_or(source),
        msg_id,
        time: u("time").unwrap_or(0),
        text: content_text(val.get("content")),
        self_echo: false,
    })
}

/// The text of a received `content` array: strings joined, faces as `[face:N]`, the font
/// element dropped (WEBQQ.md §7.1).
fn content_text(c: Option<&serde_json::Value>) -> String {
    let mut out = String::new();
    if let Some(items) = c.and_then(|c| c.as_array()) {
        for it in items {
            if let Some(s) = it.as_str() {
                out.push_str(s);
            } else if let Some(a) = it.as_array() {
                if a.first().and_then(|x| x.as_str()) == Some("face") {
                    let n = a.get(1).and_then(|x| x.as_u64()).unwrap_or(0);
                    out.push_str(&format!("[face:{n}]"));
                }
            }
        }
    }
    out
}

/// An answer a handler wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub target: Target,
    pub text: String,
}

/// Something that reacts to received messages, in order, one at a time per account.
pub trait Handler: Send {
    /// Handles one message; the replies go to the outbox atomically with marking the
    /// message handled.
    fn handle(&mut self, msg: &Incoming) -> Result<Vec<Reply>, String>;

    /// Handles one message recorded in the inbox under `seq` (stable across a replay after a
    /// crash), with this session's contacts when they are known. Handlers that forward
    /// messages elsewhere (OneBot) need both; the default is [`Handler::handle`].
    fn handle_recorded(
        &mut self,
        seq: u64,
        msg: &Incoming,
        contacts: Option<&crate::protocol::Contacts>,
    ) -> Result<Vec<Reply>, String> {
        let _ = (seq, contacts);
        self.handle(msg)
    }

    /// The final outcome of an outgoing message of this account (outbox `seq`): `delivered`,
    /// `uncertain` or `held`. Most handlers do not care.
    fn outcome(&mut self, seq: u64, result: &'static str) {
        let _ = (seq, result);
    }
}

/// Builds the handlers that live above the fleet (OneBot): the process wiring hands one to
/// the accounts through [`crate::fleet::account::Deps`], so the actors never import them.
pub trait MakeHandler: Send + Sync {
    /// The handler of an account whose file names a handler kind the fleet does not build
    /// itself; `None` if this maker does not serve that kind. Called for every account that
    /// starts, so a maker drops what it kept for an account that changed to another kind.
    fn make(&self, cfg: &crate::config::AccountFile) -> Option<Box<dyn Handler>>;
}

/// What an account gets when its handler cannot be built: every message fails, so it is
/// logged as an error (never silently answered).
pub struct Unavailable(pub String);

impl Handler for Unavailable {
    fn handle(&mut self, _: &Incoming) -> Result<Vec<Reply>, String> {
        Err(self.0.clone())
    }
}

/// The demo bot: answers a message with its own text.
pub struct Echo;

impl Handler for Echo {
    fn handle(&mut self, msg: &Incoming) -> Result<Vec<Reply>, String> {
        if msg.self_echo || msg.text.trim().is_empty() {
            return Ok(vec![]);
        }
        Ok(msg
            .reply_target()
            .map(|target| Reply {
                target,
                text: msg.text.clone(),
            })
            .into_iter()
            .collect())
    }
}

/// Appends each message as one JSON line to a file. The write reaches the kernel before the
/// message is marked handled, so a killed process never loses a line it acknowledged; and a
/// process killed after the write but before the mark replays the message at its restart,
/// which finds its line among the file's last ones and does not write it again.
///
/// The file is not held open by the handler: every account of a fleet may log, and one open
/// file per account would double the fleet's descriptors (at 10,000 accounts, 10,000 log
/// files beside 10,000 parked polls reached the 20,000 limit and failed poll connects with
/// EMFILE). The open files are shared in [`OpenLogs`], at most
/// [`log_files`](crate::fdlimit::log_files) for the whole process.
pub struct Log {
    path: PathBuf,
    /// Whether the end of the file was read for [`Log::tail_keys`] (once per handler: that
    /// is, once per start of the account).
    tail_read: bool,
    /// Keys of the lines at the end of the file when the handler first wrote (see above).
    tail_keys: std::collections::HashSet<crate::store::DedupKey>,
}

/// How much of the end of an existing log is read for the keys of its last lines (a replay
/// after a crash concerns the last messages handled, one at a time).
const LOG_TAIL_BYTES: u64 = 64 * 1024;

impl Log {
    pub fn new(path: PathBuf) -> Log {
        Log {
            path,
            tail_read: false,
            tail_keys: Default::default(),
        }
    }

    fn read_tail_keys(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(LOG_TAIL_BYTES);
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
            return;
        }
        // The first line may be cut by the seek: it does not parse and is skipped.
        for line in buf.split(|b| *b == b'\n') {
            if let Ok(m) = serde_json::from_slice::<Incoming>(line) {
                self.tail_keys.insert(m.dedup_key());
            }
        }
    }
}

impl Handler for Log {
    fn handle(&mut self, msg: &Incoming) -> Result<Vec<Reply>, String> {
        if !self.tail_read {
            self.read_tail_keys();
            self.tail_read = true;
        }
        if self.tail_keys.remove(&msg.dedup_key()) {
            tracing::info!(path = %self.path.display(), msg_id = msg.msg_id,
                "replayed message already logged before the restart; not written again");
            return Ok(vec![]);
        }
        let mut line = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let f = OpenLogs::get(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        // O_APPEND: one write(2) of the whole line lands at the end, whoever else appends.
        (&*f).write_all(&line).map_err(|e| {
            OpenLogs::forget(&self.path);
            format!("{}: {e}", self.path.display())
        })?;
        Ok(vec![])
    }
}

/// The log files open in this process, shared by every [`Log`] handler: at most
/// [`log_files`](crate::fdlimit::log_files) (256, or half of the room the open-file limit
/// leaves), the first opened closed first. A fleet
/// of fewer logging accounts keeps all of them open; a larger one reopens a file when its
/// account logs again after others (an open and a close, a few microseconds, against a
/// descriptor per account for good).
pub struct OpenLogs {
    files: std::collections::HashMap<PathBuf, std::sync::Arc<std::fs::File>>,
    /// The open paths, oldest opened first: the next to close. First in, first out rather
    /// than least recently used: when more accounts log than files stay open they take
    /// turns, and every order misses alike; FIFO costs no bookkeeping per write. (A path
    /// closed after a failed write leaves the list too.)
    order: std::collections::VecDeque<PathBuf>,
}

impl OpenLogs {
    fn lock() -> std::sync::MutexGuard<'static, OpenLogs> {
        static OPEN: std::sync::OnceLock<std::sync::Mutex<OpenLogs>> = std::sync::OnceLock::new();
        OPEN.get_or_init(|| {
            std::sync::Mutex::new(OpenLogs {
                files: Default::default(),
                order: Default::default(),
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
    }

    /// The open file of `path`, opened (append, created with its folder) if it is not.
    fn get(path: &std::path::Path) -> std::io::Result<std::sync::Arc<std::fs::File>> {
        if let Some(f) = Self::lock().files.get(path) {
            return Ok(f.clone());
        }
        // Opened outside the lock: the other Arbiters' writes do not wait for this one.
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The folder is missing (first write of a fresh data directory).
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                open()
            }
            other => other,
        };
        let f = std::sync::Arc::new(f?);
        let (f, closed) = {
            let mut open = Self::lock();
            if let Some(theirs) = open.files.get(path) {
                // opened by another thread meanwhile: theirs is kept, ours closed
                (theirs.clone(), vec![f])
            } else {
                let mut closed = Vec::new();
                while open.files.len() >= crate::fdlimit::log_files() as usize {
                    let Some(oldest) = open.order.pop_front() else {
                        break;
                    };
                    closed.extend(open.files.remove(&oldest));
                }
                open.files.insert(path.to_owned(), f.clone());
                open.order.push_back(path.to_owned());
                (f, closed)
            }
        };
        // closed after the lock is released (if no write holds it still)
        drop(closed);
        Ok(f)
    }

    /// Closes `path` (after a failed write: the next one opens it again).
    fn forget(path: &std::path::Path) {
        let gone = {
            let mut open = Self::lock();
            open.order.retain(|p| p != path);
            open.files.remove(path)
        };
        drop(gone);
    }

    /// How many log files are open.
    #[cfg(test)]
    fn count() -> usize {
        Self::lock().files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_events_decode() {
        let v = serde_json::json!({"poll_type":"group_message","value":{"content":[["font",{}],"hi ",["face",14]],"from_uin":55,"group_code":55,"msg_id":9,"msg_type":0,"send_uin":77,"time":1450686775,"to_uin":1}});
        let Decoded::Message(m) = decode_raw(&v) else {
            panic!()
        };
        assert_eq!(
            (m.kind, m.source, m.sender, m.msg_id),
            (Kind::Group, 55, 77, 9)
        );
        assert_eq!(m.text, "hi [face:14]");
        assert_eq!(m.reply_target(), Some(Target::Group(55)));
        let k = serde_json::json!({"poll_type":"kick_message","value":{"reason":"elsewhere"}});
        assert_eq!(decode_raw(&k), Decoded::Kick("elsewhere".into()));
        let bad = serde_json::json!({"poll_type":"message","value":{"content":"x"}});
        assert_eq!(decode_raw(&bad), Decoded::Other("malformed"));
        assert_eq!(decode_raw(&serde_json::json!(7)), Decoded::Other("other"));
    }

    #[test]
    fn echo_answers_but_never_its_own_echo() {
        let mut m = Incoming {
            kind: Kind::Buddy,
            poll_type: "message".into(),
            source: 5,
            sender: 5,
            msg_id: 1,
            time: 0,
            text: "ping".into(),
            self_echo: false,
        };
        assert_eq!(
            Echo.handle(&m).unwrap(),
            vec![Reply {
                target: Target::Buddy(5),
                text: "ping".into()
            }]
        );
        m.self_echo = true;
        assert!(Echo.handle(&m).unwrap().is_empty());
        m.self_echo = false;
        m.kind = Kind::Sess;
        assert!(Echo.handle(&m).unwrap().is_empty());
    }

    #[test]
    fn log_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.jsonl");
        let mut l = Log::new(p.clone());
        let m = Incoming {
            kind: Kind::Discu,
            poll_type: "discu_message".into(),
            source: 5,
            sender: 6,
            msg_id: 1,
            time: 0,
            text: "x".into(),
            self_echo: false,
        };
        l.handle(&m).unwrap();
        l.handle(&m).unwrap();
        let text = std::fs::read_to_string(p).unwrap();
        assert_eq!(text.lines().count(), 2);
        let back: Incoming = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(back, m);
    }

    /// A friend message `m<msg_id>`.
    fn buddy(msg_id: u64) -> Incoming {
        Incoming {
            kind: Kind::Buddy,
            poll_type: "message".into(),
            source: 5,
            sender: 5,
            msg_id,
            time: 0,
            text: format!("m{msg_id}"),
            self_echo: false,
        }
    }

    #[test]
    fn a_message_replayed_after_a_crash_is_not_logged_twice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let mut l = Log::new(p.clone());
        l.handle(&buddy(1)).unwrap();
        l.handle(&buddy(2)).unwrap();
        drop(l); // killed before message 2 was marked handled
        let mut l = Log::new(p.clone());
        l.handle(&buddy(2)).unwrap(); // the replay
        l.handle(&buddy(3)).unwrap();
        let text = std::fs::read_to_string(p).unwrap();
        let ids: Vec<u64> = text
            .lines()
            .map(|x| serde_json::from_str::<Incoming>(x).unwrap().msg_id)
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    /// More logging accounts than the process keeps log files open: every line is written,
    /// to its own file, and no more than `log_files()` stay open.
    #[test]
    fn more_logs_than_open_files_lose_nothing() {
        let cap = crate::fdlimit::log_files() as usize;
        let dir = tempfile::tempdir().unwrap();
        let n = cap + 50;
        let mut logs: Vec<Log> = (0..n)
            .map(|i| Log::new(dir.path().join(format!("acc{i}.jsonl"))))
            .collect();
        // Round robin, as a fleet-wide burst arrives: each file is closed and opened again.
        for round in 0..3 {
            for (i, l) in logs.iter_mut().enumerate() {
                l.handle(&buddy((i * 10 + round) as u64)).unwrap();
            }
            assert!(OpenLogs::count() <= cap, "{} open", OpenLogs::count());
        }
        for i in 0..n {
            let text = std::fs::read_to_string(dir.path().join(format!("acc{i}.jsonl"))).unwrap();
            let ids: Vec<u64> = text
                .lines()
                .map(|x| serde_json::from_str::<Incoming>(x).unwrap().msg_id)
                .collect();
            let want: Vec<u64> = (0..3).map(|r| (i * 10 + r) as u64).collect();
            assert_eq!(ids, want, "acc{i}");
        }
    }
}
