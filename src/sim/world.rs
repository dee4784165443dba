//! The simulated world: accounts with generated contacts, QR codes, ptlogin logins and
//! channel sessions, each session with its pseudo uins and its queue of poll events.
//!
//! Everything lives in one `World` behind one mutex that is never held across an `.await`;
//! handlers copy what they need out. Every collection that grows with traffic is bounded
//! (QR codes, logins per account, sent log, dedup window, rate windows).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

/// QR codes kept for `ptqrlogin` and `/sim/qr` (older ones are forgotten).
pub use super::qrbook::MAX_QRS;
/// Logins kept per account; older ones die (bounded memory for clients that re-scan a lot).
pub const MAX_LOGINS_PER_ACCOUNT: usize = 4;
/// Entries of `/sim/sent` kept per account.
pub const MAX_SENT: usize = 10_000;
/// Events queued per session; beyond this the oldest is dropped (a client that never polls).
pub const MAX_QUEUE: usize = 1_000;

/// Random lowercase hex of `n` chars (tokens the real service sent as hex).
pub fn rand_hex(n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

/// Random token from the alphabet ptlogin used for cookies like `p_skey` (§1).
pub fn rand_token(n: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// `[A-Za-z0-9*_-]`, the alphabet of `p_skey`, `pt4_token`, `qrsig` (§1).
pub const TOKEN_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-";

/// splitmix64: derives stable pseudo ids from a session seed without keeping an RNG.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A friend of an account.
#[derive(Debug, Clone)]
pub struct Person {
    pub qq: u64,
    pub nick: String,
    pub markname: Option<String>,
    /// Category index; 0 is the implicit "我的好友" (§6.1).
    pub category: u32,
    pub face: u32,
    pub lnick: String,
    pub gender: &'static str,
    /// Shown online by `get_online_buddies2`.
    pub online: bool,
}

/// A member of a group or discussion.
#[derive(Debug, Clone)]
pub struct Member {
    pub qq: u64,
    pub nick: String,
    /// Group card (group nickname), absent for some members (§6.3).
    pub card: Option<String>,
    pub admin: bool,
}

/// A group (qun).
#[derive(Debug, Clone)]
pub struct Group {
    /// The real group number (`info_seq`, §1); the control API names groups by it.
    pub number: u64,
    pub name: String,
    pub markname: Option<String>,
    pub owner: u64,
    pub createtime: u64,
    /// Includes the account itself.
    pub members: Vec<Member>,
}

/// A discussion.
#[derive(Debug, Clone)]
pub struct Discu {
    /// Discussion id; not session-scoped (§1 lists it as a plain id).
    pub did: u64,
    pub name: String,
    /// Includes the account itself.
    pub members: Vec<Member>,
}

/// Everything an account knows, generated deterministically from its QQ number.
#[derive(Debug, Clone, Default)]
pub struct Contacts {
    pub friends: Vec<Person>,
    /// `(index, name)`; index 0 is implicit.
    pub categories: Vec<(u32, String)>,
    pub groups: Vec<Group>,
    pub discus: Vec<Discu>,
}

const NICKS: &[&str] = &[
    "小明", "阿强", "Lily", "老王", "Tom", "小红", "大熊", "Echo", "阿飞", "Mia", "小白", "Kevin",
];
const GROUP_NAMES: &[&str] = &["测试群", "技术交流", "同学会", "周末爬山", "读书会"];
const FACES: &[u32] = &[0, 252, 522, 555, 567, 603];

impl Contacts {
    /// Generates contacts for `qq`; the same inputs always give the same contacts.
    pub fn generate(
        qq: u64,
        own_nick: &str,
        friends: u32,
        groups: u32,
        discus: u32,
        members: u32,
    ) -> Contacts {
        let mut rng = StdRng::seed_from_u64(qq ^ 0x5157_4651_5157_4651);
        let mut used: HashSet<u64> = HashSet::new();
        used.insert(qq);
        fn fresh(rng: &mut StdRng, used: &mut HashSet<u64>, lo: u64, hi: u64) -> u64 {
            loop {
                let n = rng.random_range(lo..hi);
                if used.insert(n) {
                    return n;
                }
            }
        }
        let fresh_qq =
            |rng: &mut StdRng, used: &mut HashSet<u64>| fresh(rng, used, 10_001, 3_999_999_999);
        let mut c = Contacts {
            categories: vec![(1, "朋友".into()), (2, "同学".into())],
            ..Default::default()
        };
        for i in 0..friends {
            let fq = fresh_qq(&mut rng, &mut used);
            let base = NICKS[(rng.random_range(0..NICKS.len()) + i as usize) % NICKS.len()];
            c.friends.push(Person {
                qq: fq,
                nick: format!("{base}{}", i + 1),
                markname: (i % 2 == 1).then(|| format!("备注{}", i + 1)),
                category: i % 3,
                face: FACES[rng.random_range(0..FACES.len())],
                lnick: format!("{base}的签名"),
                gender: if rng.random_bool(0.5) {
                    "male"
                } else {
                    "female"
                },
                online: i % 2 == 0,
            });
        }
        let me = Member {
            qq,
            nick: own_nick.to_string(),
            card: None,
            admin: false,
        };
        for g in 0..groups {
            let number = fresh(&mut rng, &mut used, 100_000, 999_999_999);
            let mut ms = vec![me.clone()];
            for m in 0..members {
                // The first members are friends (their uin is the same in both lists).
                let (mq, nick) = match c.friends.get(m as usize) {
                    Some(f) if m < 2 => (f.qq, f.nick.clone()),
                    _ => {
                        let q = fresh_qq(&mut rng, &mut used);
                        (q, format!("群友{}", m + 1))
                    }
                };
                ms.push(Member {
                    qq: mq,
                    card: (m % 2 == 0).then(|| format!("名片{}", m + 1)),
                    nick,
                    admin: m == 0,
                });
            }
            let owner = if g == 0 {
                qq
            } else {
                ms.get(1).map(|m| m.qq).unwrap_or(qq)
            };
            c.groups.push(Group {
                number,
                name: format!("{}{}", GROUP_NAMES[g as usize % GROUP_NAMES.len()], g + 1),
                markname: (g == 0).then(|| "群备注".to_string()),
                owner,
                createtime: 1_388_307_595 + u64::from(g) * 86_400,
                members: ms,
            });
        }
        for d in 0..discus {
            let did = fresh(&mut rng, &mut used, 100_000_000, 4_000_000_000);
            let mut ms = vec![me.clone()];
            if let Some(f) = c.friends.first() {
                ms.push(Member {
                    qq: f.qq,
                    nick: f.nick.clone(),
                    card: None,
                    admin: false,
                });
            }
            let q = fresh_qq(&mut rng, &mut used);
            ms.push(Member {
                qq: q,
                nick: format!("讨论组成员{}", d + 1),
                card: None,
                admin: false,
            });
            c.discus.push(Discu {
                did,
                name: format!("讨论组{}", d + 1),
                members: ms,
            });
        }
        c
    }

    /// Nick of anyone the account knows, for event and info answers.
    pub fn nick_of(&self, qq: u64) -> Option<&str> {
        self.friends
            .iter()
            .find(|f| f.qq == qq)
            .map(|f| f.nick.as_str())
            .or_else(|| {
                self.groups
                    .iter()
                    .flat_map(|g| g.members.iter())
                    .chain(self.discus.iter().flat_map(|d| d.members.iter()))
                    .find(|m| m.qq == qq)
                    .map(|m| m.nick.as_str())
            })
    }

    /// Whether `qq` is anyone the account knows.
    pub fn knows(&self, qq: u64) -> bool {
        self.nick_of(qq).is_some()
    }
}

/// One entry of `/sim/sent`.
#[derive(Debug, Clone, Serialize)]
pub struct SentEntry {
    pub kind: &'static str,
    /// Friend / member QQ number, group number or did.
    pub to: u64,
    pub text: String,
    pub msg_id: i64,
    pub time: u64,
}

/// Identity of a send for the dedup window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey {
    pub msg_id: i64,
    pub target: String,
    pub content: String,
}

/// A QQ account.
#[derive(Debug)]
pub struct Account {
    pub qq: u64,
    pub nick: String,
    /// Shared, not owned: every request that reads them under the world's lock (an inject, a
    /// poll's online list, the info calls) takes a handle to them; a deep copy per request
    /// showed in the simulator's profile at 10,000 accounts, under the lock. Regenerated
    /// contacts replace the whole.
    pub contacts: Arc<Contacts>,
    /// Full QR logins (a login2 on a fresh QR login).
    pub logins: u64,
    /// login2 on a login that already had a session: cookie replay or pt4_auth (§3.10).
    pub resumes: u64,
    /// login2 relinks of a live session (§3.7).
    pub relinks: u64,
    /// Sends acknowledged but not delivered because they repeated an accepted one.
    pub duplicates_dropped: u64,
    pub calls: BTreeMap<String, u64>,
    pub retcodes: BTreeMap<String, BTreeMap<String, u64>>,
    pub sent: VecDeque<SentEntry>,
    /// The session that gets events (the latest login2).
    pub active_session: Option<u64>,
    /// Login ids, oldest first.
    pub login_ids: VecDeque<u64>,
    pub last_send_ms: Option<u64>,
    pub target_sends: HashMap<String, VecDeque<u64>>,
    pub dedup: VecDeque<(u64, DedupKey)>,
    pub dedup_set: HashSet<DedupKey>,
    pub friend_calls: VecDeque<u64>,
    pub friend_locked_until: u64,
    /// Server msg_id of the next delivered event.
    pub next_msg_id: i64,
}

impl Account {
    pub fn new(qq: u64, nick: String, contacts: Contacts) -> Account {
        Account {
            qq,
            nick,
            contacts: Arc::new(contacts),
            logins: 0,
            resumes: 0,
            relinks: 0,
            duplicates_dropped: 0,
            calls: BTreeMap::new(),
            retcodes: BTreeMap::new(),
            sent: VecDeque::new(),
            active_session: None,
            login_ids: VecDeque::new(),
            last_send_ms: None,
            target_sends: HashMap::new(),
            dedup: VecDeque::new(),
            dedup_set: HashSet::new(),
            friend_calls: VecDeque::new(),
            friend_locked_until: 0,
            next_msg_id: 10_000 + (mix(qq) % 40_000) as i64,
        }
    }

    /// A fresh server msg_id.
    pub fn take_msg_id(&mut self) -> i64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }
}

/// State of a QR code (`/sim/qr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QrState {
    Waiting,
    Scanned,
    Confirmed,
    Expired,
    Used,
}

/// A QR code from `ptqrshow`.
#[derive(Debug, Clone)]
pub struct Qr {
    pub qrsig: String,
    /// What the PNG encodes (the `k=` of the URL), distinct from the cookie.
    pub token: String,
    pub state: QrState,
    pub qq: Option<u64>,
    pub created_ms: u64,
}

/// A ptlogin login: the cookies a successful `ptqrlogin` set, valid for the session
/// lifetime (§11: the expiry lives here and cannot be refreshed by re-running login2).
#[derive(Debug, Clone)]
pub struct Login {
    pub id: u64,
    pub qq: u64,
    pub ptwebqq: String,
    pub ptwebqq_set_ms: u64,
    pub skey: String,
    pub p_skey: String,
    pub pt4_token: String,
    pub superkey: String,
    pub supertoken: String,
    /// `ptsigx` of the check_sig URL currently handed out.
    pub ptsigx: String,
    pub created_ms: u64,
    /// Killed by `/sim/expire`, a newer login pushing it out, or ptlogin logout.
    pub dead: bool,
    /// Set by `getvfwebqq`; login2 embeds it in the psessionid.
    pub vfwebqq: Option<String>,
    /// Sessions created on this login (0 → the next login2 is a full login).
    pub sessions_created: u64,
    /// The QR poll that made this login sent no `ptqrtoken` (the pre-2017 client era).
    pub qr_without_token: bool,
}

/// Lifecycle of a channel session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Alive,
    /// A `kick_message` waits in the queue; after it is delivered the session is dead.
    Kicked,
}

/// A channel session (`login2` → `psessionid`).
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub qq: u64,
    pub login_id: u64,
    pub psessionid: String,
    /// As sent by the client, normalised to a decimal string.
    pub clientid: String,
    pub vfwebqq: String,
    pub status: String,
    /// `get_online_buddies2` was called (§3.8); until then poll answers 103.
    pub activated: bool,
    /// Logged in the early-2016 way (login2 on `d.web2.qq.com` with the client's own
    /// clientid after a QR login without `ptqrtoken`): the §3.8 warm-up rule came later
    /// (2016-04), so such a session may poll without it.
    pub legacy: bool,
    pub state: SessionState,
    seed: u64,
    uins: HashMap<u64, u64>,
    rev_uins: HashMap<u64, u64>,
    groups: HashMap<u64, (u64, u64)>,
    rev_gid: HashMap<u64, u64>,
    rev_code: HashMap<u64, u64>,
    pub queue: VecDeque<Value>,
    /// Incremented by every poll; a poll whose number is no longer current is answered.
    pub poll_gen: u64,
    pub notify: Arc<Notify>,
    /// The next delivered event is delivered twice (fault `duplicate`).
    pub dup_next: u32,
    /// `group_sig` values handed out by `get_c2cmsg_sig2`.
    pub sigs: HashSet<String>,
    /// See [`Session::echo_uin`].
    echo_uin: Option<u64>,
}

impl Session {
    pub fn new(
        id: u64,
        qq: u64,
        login_id: u64,
        psessionid: String,
        clientid: String,
        vfwebqq: String,
        status: String,
    ) -> Session {
        Session {
            id,
            qq,
            login_id,
            psessionid,
            clientid,
            vfwebqq,
            status,
            activated: false,
            legacy: false,
            state: SessionState::Alive,
            seed: rand::rng().random(),
            uins: HashMap::new(),
            rev_uins: HashMap::new(),
            groups: HashMap::new(),
            rev_gid: HashMap::new(),
            rev_code: HashMap::new(),
            queue: VecDeque::new(),
            poll_gen: 0,
            notify: Arc::new(Notify::new()),
            dup_next: 0,
            sigs: HashSet::new(),
            echo_uin: None,
        }
    }

    fn fresh_pseudo(&self, salt: u64, taken: impl Fn(u64) -> bool) -> u64 {
        let mut i = 0u64;
        loop {
            let v = mix(self.seed ^ mix(salt.wrapping_add(i))) & 0xFFFF_FFFF;
            // Avoid tiny values and anything that could look like the own QQ number.
            if v >= 1_000_000 && v != self.qq && !taken(v) {
                return v;
            }
            i += 1;
        }
    }

    /// Session pseudo uin of a person (own uin = QQ number, §1). Stable within the session.
    pub fn uin_of(&mut self, qq: u64) -> u64 {
        if qq == self.qq {
            return qq;
        }
        if let Some(u) = self.uins.get(&qq) {
            return *u;
        }
        let u = self.fresh_pseudo(qq, |v| {
            self.echo_uin == Some(v)
                || self.rev_uins.contains_key(&v)
                || self.rev_gid.contains_key(&v)
                || self.rev_code.contains_key(&v)
        });
        self.uins.insert(qq, u);
        self.rev_uins.insert(u, qq);
        u
    }

    /// The `send_uin` the session's own group and discussion messages come back with
    /// (WEBQQ.md §5.4, §14 item 5): a pseudo uin stable for the session that is in no member
    /// list and is not the own uin, so a client recognises its echo only by knowing what it
    /// sent (or by its sender being unknown).
    pub fn echo_uin(&mut self) -> u64 {
        if let Some(u) = self.echo_uin {
            return u;
        }
        let u = self.fresh_pseudo(0x6563_686f, |v| {
            self.rev_uins.contains_key(&v)
                || self.rev_gid.contains_key(&v)
                || self.rev_code.contains_key(&v)
        });
        self.echo_uin = Some(u);
        u
    }

    /// Real QQ number behind a pseudo uin handed out in this session.
    pub fn qq_of_uin(&self, uin: u64) -> Option<u64> {
        if uin == self.qq {
            return Some(uin);
        }
        self.rev_uins.get(&uin).copied()
    }

    /// `(gid, code)` of a group number in this session (§1; both session-scoped, §14.4).
    pub fn group_ids(&mut self, number: u64) -> (u64, u64) {
        if let Some(g) = self.groups.get(&number) {
            return *g;
        }
        let taken = |s: &Session, v: u64| {
            s.echo_uin == Some(v)
                || s.rev_uins.contains_key(&v)
                || s.rev_gid.contains_key(&v)
                || s.rev_code.contains_key(&v)
        };
        let gid = self.fresh_pseudo(number ^ 0x0067_6964, |v| taken(self, v));
        self.rev_gid.insert(gid, number);
        let code = self.fresh_pseudo(number ^ 0x636f_6465, |v| taken(self, v));
        self.rev_code.insert(code, number);
        self.groups.insert(number, (gid, code));
        (gid, code)
    }

    /// Group number behind a gid of this session.
    pub fn group_of_gid(&self, gid: u64) -> Option<u64> {
        self.rev_gid.get(&gid).copied()
    }

    /// Group number behind a group code of this session.
    pub fn group_of_code(&self, code: u64) -> Option<u64> {
        self.rev_code.get(&code).copied()
    }

    /// Queues an event and wakes the poll.
    pub fn push_event(&mut self, ev: Value) {
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
        }
        self.queue.push_back(ev);
        self.notify.notify_waiters();
    }
}

/// The whole simulated world.
#[derive(Debug, Default)]
pub struct World {
    pub accounts: HashMap<u64, Account>,
    pub logins: HashMap<u64, Login>,
    pub login_by_skey: HashMap<String, u64>,
    pub login_by_ptsigx: HashMap<String, u64>,
    pub login_by_supertoken: HashMap<String, u64>,
    pub sessions: HashMap<u64, Session>,
    pub session_by_psid: HashMap<String, u64>,
    pub qrs: super::qrbook::QrBook,
    /// Requests per endpoint for `/sim/stats`.
    pub requests: BTreeMap<String, u64>,
    next_id: u64,
}

/// Why a request's cookies name no usable login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    Missing,
    Unknown,
    Expired,
}

impl World {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Creates an account (or regenerates its contacts when counts are given).
    #[allow(clippy::too_many_arguments)]
    pub fn upsert_account(
        &mut self,
        qq: u64,
        nick: Option<String>,
        friends: u32,
        groups: u32,
        discus: u32,
        members: u32,
        regenerate: bool,
    ) -> &mut Account {
        let exists = self.accounts.contains_key(&qq);
        if !exists {
            let nick = nick
                .clone()
                .unwrap_or_else(|| format!("机器人{}", qq % 10_000));
            let contacts = Contacts::generate(qq, &nick, friends, groups, discus, members);
            self.accounts.insert(qq, Account::new(qq, nick, contacts));
        } else {
            let acc = self.accounts.get_mut(&qq).expect("checked");
            if let Some(n) = nick {
                acc.nick = n;
            }
            if regenerate {
                acc.contacts = Arc::new(Contacts::generate(
                    qq, &acc.nick, friends, groups, discus, members,
                ));
            }
        }
        self.accounts.get_mut(&qq).expect("inserted")
    }

    /// A QQ number no account has yet (for auto-scan and scans without `qq`).
    pub fn fresh_qq(&self) -> u64 {
        let mut rng = rand::rng();
        loop {
            let q = rng.random_range(100_000_000u64..3_999_999_999);
            if !self.accounts.contains_key(&q) {
                return q;
            }
        }
    }

    /// The QR named by its qrsig or token, marked expired first if its time is over.
    pub fn qr_mut(&mut self, key: &str, now: u64, lifetime_ms: u64) -> Option<&mut Qr> {
        self.qrs.find_mut(key, now, lifetime_ms)
    }

    /// Adds a QR code, forgetting the oldest beyond [`MAX_QRS`].
    pub fn add_qr(&mut self, qr: Qr) {
        self.qrs.push(qr);
    }

    /// Creates a ptlogin login for `qq` (QR confirmed and polled, or bulk minting).
    pub fn create_login(&mut self, qq: u64, now: u64) -> u64 {
        let id = self.next_id();
        let login = Login {
            id,
            qq,
            ptwebqq: rand_hex(64),
            ptwebqq_set_ms: now,
            skey: format!("@{}", rand_token(9, &TOKEN_ALPHABET[..62])),
            p_skey: format!("{}_", rand_token(43, TOKEN_ALPHABET)),
            pt4_token: format!("{}_", rand_token(43, TOKEN_ALPHABET)),
            superkey: rand_token(64, TOKEN_ALPHABET),
            supertoken: rand_hex(40),
            ptsigx: rand_hex(128),
            created_ms: now,
            dead: false,
            vfwebqq: None,
            sessions_created: 0,
            qr_without_token: false,
        };
        self.login_by_skey.insert(login.skey.clone(), id);
        self.login_by_ptsigx.insert(login.ptsigx.clone(), id);
        self.login_by_supertoken
            .insert(login.supertoken.clone(), id);
        self.logins.insert(id, login);
        let mut evicted = Vec::new();
        if let Some(acc) = self.accounts.get_mut(&qq) {
            acc.login_ids.push_back(id);
            while acc.login_ids.len() > MAX_LOGINS_PER_ACCOUNT {
                if let Some(old) = acc.login_ids.pop_front() {
                    evicted.push(old);
                }
            }
        }
        for old in evicted {
            self.remove_login(old);
        }
        id
    }

    fn remove_login(&mut self, id: u64) {
        if let Some(l) = self.logins.remove(&id) {
            self.login_by_skey.remove(&l.skey);
            self.login_by_ptsigx.remove(&l.ptsigx);
            self.login_by_supertoken.remove(&l.supertoken);
        }
    }

    /// Whether a login is usable at `now`.
    pub fn login_alive(&self, id: u64, now: u64, lifetime_ms: u64) -> bool {
        self.logins
            .get(&id)
            .is_some_and(|l| !l.dead && now.saturating_sub(l.created_ms) < lifetime_ms)
    }

    /// Finds the login named by the `skey` and `uin` cookies (and `p_skey` when the call
    /// comes after check_sig, §3.5: without the web2 cookies login2 failed).
    pub fn login_from_cookies(
        &self,
        skey: Option<&str>,
        uin: Option<&str>,
        p_skey: Option<&str>,
        need_p_skey: bool,
        now: u64,
        lifetime_ms: u64,
    ) -> Result<u64, CookieError> {
        let skey = skey.filter(|s| !s.is_empty()).ok_or(CookieError::Missing)?;
        let uin = uin.and_then(parse_o_uin).ok_or(CookieError::Missing)?;
        let id = *self.login_by_skey.get(skey).ok_or(CookieError::Unknown)?;
        let l = &self.logins[&id];
        if l.qq != uin {
            return Err(CookieError::Unknown);
        }
        if need_p_skey && p_skey != Some(l.p_skey.as_str()) {
            return Err(CookieError::Missing);
        }
        if !self.login_alive(id, now, lifetime_ms) {
            return Err(CookieError::Expired);
        }
        Ok(id)
    }

    /// Removes a session and its index entry.
    pub fn remove_session(&mut self, id: u64) {
        if let Some(s) = self.sessions.remove(&id) {
            self.session_by_psid.remove(&s.psessionid);
            s.notify.notify_waiters();
            if let Some(acc) = self.accounts.get_mut(&s.qq) {
                if acc.active_session == Some(id) {
                    acc.active_session = None;
                }
            }
        }
    }

    /// Kicks the account's active session: a `kick_message` for its poll, then it is dead.
    pub fn kick_active(&mut self, qq: u64) -> bool {
        let Some(sid) = self.accounts.get(&qq).and_then(|a| a.active_session) else {
            return false;
        };
        if let Some(acc) = self.accounts.get_mut(&qq) {
            acc.active_session = None;
        }
        // Sessions kicked earlier whose client never came back are dropped now.
        let stale: Vec<u64> = self
            .sessions
            .values()
            .filter(|s| s.qq == qq && s.state == SessionState::Kicked)
            .map(|s| s.id)
            .collect();
        for id in stale {
            self.remove_session(id);
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.state = SessionState::Kicked;
            s.queue.clear();
            s.push_event(kick_event());
        }
        true
    }

    /// Kills every login and session of the account, as two days without use would (§11).
    pub fn expire_account(&mut self, qq: u64) {
        for l in self.logins.values_mut() {
            if l.qq == qq {
                l.dead = true;
            }
        }
        let ids: Vec<u64> = self
            .sessions
            .values()
            .filter(|s| s.qq == qq)
            .map(|s| s.id)
            .collect();
        for id in ids {
            self.remove_session(id);
        }
    }

    /// The active, alive session of an account.
    pub fn active_session_mut(&mut self, qq: u64) -> Option<&mut Session> {
        let sid = self.accounts.get(&qq)?.active_session?;
        self.sessions
            .get_mut(&sid)
            .filter(|s| s.state == SessionState::Alive)
    }

    /// Wakes every poll (after the clock moved, so lifetimes are re-checked).
    pub fn wake_all(&self) {
        for s in self.sessions.values() {
            s.notify.notify_waiters();
        }
    }
}

/// `o0123456` → 123456 (§1: strip the `o`, parse the rest; zero padding disappears).
pub fn parse_o_uin(v: &str) -> Option<u64> {
    v.strip_prefix('o')
        .or_else(|| v.strip_prefix('O'))
        .unwrap_or(v)
        .parse()
        .ok()
}

/// `o` + QQ number left-padded to 10 digits (§1).
pub fn o_uin(qq: u64) -> String {
    format!("o{qq:010}")
}

/// The E1 kick event, the only real sample (§5.3, fixture `poll2_kick_message_2012`).
pub fn kick_event() -> Value {
    serde_json::json!({
        "poll_type": "kick_message",
        "value": {
            "way": "do_poll",
            "show_reason": 1,
            "reason": "您的账号在另一地点登录，您已被迫下线。如有疑问，请登录 safe.qq.com 了解更多。"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_deterministic_and_sized() {
        let a = Contacts::generate(123456, "me", 5, 2, 1, 4);
        let b = Contacts::generate(123456, "me", 5, 2, 1, 4);
        assert_eq!(a.friends.len(), 5);
        assert_eq!(a.groups.len(), 2);
        assert_eq!(a.groups[0].members.len(), 5);
        assert_eq!(a.discus.len(), 1);
        let qa: Vec<u64> = a.friends.iter().map(|f| f.qq).collect();
        let qb: Vec<u64> = b.friends.iter().map(|f| f.qq).collect();
        assert_eq!(qa, qb);
        assert_ne!(
            qa,
            Contacts::generate(654321, "me", 5, 2, 1, 4)
                .friends
                .iter()
                .map(|f| f.qq)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn pseudo_uins_stable_in_session_and_differ_across() {
        let mut s1 = Session::new(
            1,
            42,
            1,
            "p".into(),
            "1".into(),
            "v".into(),
            "online".into(),
        );
        let mut s2 = Session::new(
            2,
            42,
            1,
            "q".into(),
            "1".into(),
            "v".into(),
            "online".into(),
        );
        let u = s1.uin_of(777);
        assert_eq!(s1.uin_of(777), u);
        assert_eq!(s1.qq_of_uin(u), Some(777));
        assert_eq!(s1.uin_of(42), 42);
        assert!(u <= 0xFFFF_FFFF);
        assert_ne!(s2.uin_of(777), u);
        let (gid, code) = s1.group_ids(5555);
        assert_ne!(gid, code);
        assert_eq!(s1.group_of_gid(gid), Some(5555));
        assert_eq!(s1.group_of_code(code), Some(5555));
    }

    #[test]
    fn o_uin_round_trips() {
        assert_eq!(o_uin(123456), "o0000123456");
        assert_eq!(parse_o_uin("o0000123456"), Some(123456));
        assert_eq!(parse_o_uin("x"), None);
    }
}
