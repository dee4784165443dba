//! One account's whole durable state as one file: `qqfleet account export` / `import`, and the
//! shard handoff (`qqfleet run --handoff DIR`).
//!
//! The export is generic over the store: every sled tree, every key that belongs to the
//! account by the store's key convention ([`crate::store::key_owner`]: the id itself, the id
//! followed by NUL and more, or a tag, NUL and the id). A tree another module adds later
//! (stable ids, event queues, send pacing) moves with the account without a change here.
//!
//! The file is JSON: `{"format":"qqfleet-account","version":1,"id","exported_at","trees":
//! {tree: [[key_hex, value_hex], ...]},"sha256"}`, where `sha256` is the SHA-256 of the same
//! object serialized without it (keys and values in store order). A file that was cut short
//! or edited is refused before anything is written.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The `format` word of an account file.
pub const FORMAT: &str = "qqfleet-account";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// The file name of an account `id` in a handoff directory.
pub fn handoff_file(dir: &Path, id: &str) -> std::path::PathBuf {
    dir.join(format!("{id}.qqacct"))
}

/// Errors of export and import.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not an account file of a version this build reads, or is damaged.
    #[error("{path}: {message}")]
    Bad { path: String, message: String },
    /// The data directory already holds a different state of the account.
    #[error("account `{0}` already has a different state in this data directory; import with --force to replace it")]
    Conflict(String),
    /// Nothing is stored for the account.
    #[error("no stored state for account `{0}` in this data directory")]
    Unknown(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// Every stored key and value of one account, by tree.
pub type Trees = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// One account's durable state, as written to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDump {
    pub id: String,
    pub exported_at: u64,
    pub trees: Trees,
}

#[derive(Serialize, Deserialize)]
struct Body {
    format: String,
    version: u32,
    id: String,
    exported_at: u64,
    trees: BTreeMap<String, Vec<(String, String)>>,
}

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(flatten)]
    body: Body,
    sha256: String,
}

impl AccountDump {
    /// Stored entries in all trees.
    pub fn entries(&self) -> usize {
        self.trees.values().map(Vec::len).sum()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = Body {
            format: FORMAT.into(),
            version: VERSION,
            id: self.id.clone(),
            exported_at: self.exported_at,
            trees: self
                .trees
                .iter()
                .map(|(t, kvs)| {
                    let kvs = kvs.iter().map(|(k, v)| (hex(k), hex(v))).collect();
                    (t.clone(), kvs)
                })
                .collect(),
        };
        let sha256 = hex(&sha256(&serde_json::to_vec(&body).expect("plain data")));
        let mut out = serde_json::to_vec_pretty(&File { body, sha256 }).expect("plain data");
        out.push(b'\n');
        out
    }

    /// Reads a file's bytes; `what` names it in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<AccountDump, TransferError> {
        let bad = |m: String| TransferError::Bad {
            path: what.to_string(),
            message: m,
        };
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not an account file (JSON: {e})")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(format!(
                "not an account file (format is not `{FORMAT}`)"
            )));
        }
        match v.get("version").and_then(|f| f.as_u64()) {
            Some(n) if n == u64::from(VERSION) => {}
            Some(n) => {
                return Err(bad(format!(
                    "version {n}; this qqfleet reads version {VERSION}"
                )))
            }
            None => return Err(bad("no version".into())),
        }
        let f: File = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        let want = hex(&sha256(&serde_json::to_vec(&f.body).expect("plain data")));
        if want != f.sha256 {
            return Err(bad(
                "integrity check failed: sha256 does not match the content (damaged or edited)"
                    .into(),
            ));
        }
        if !crate::config::valid_id(&f.body.id) {
            return Err(bad(format!("invalid account id `{}`", f.body.id)));
        }
        let mut trees = Trees::new();
        for (t, kvs) in f.body.trees {
            let mut out = Vec::with_capacity(kvs.len());
            for (k, v) in kvs {
                let k = unhex(&k).ok_or_else(|| bad(format!("tree {t}: bad key hex")))?;
                let v = unhex(&v).ok_or_else(|| bad(format!("tree {t}: bad value hex")))?;
                if crate::store::key_owner(&k) != Some(f.body.id.as_bytes()) {
                    return Err(bad(format!(
                        "tree {t}: a key that is not account `{}`'s",
                        f.body.id
                    )));
                }
                out.push((k, v));
            }
            trees.insert(t, out);
        }
        Ok(AccountDump {
            id: f.body.id,
            exported_at: f.body.exported_at,
            trees,
        })
    }

    /// Writes the file durably: to a temporary name, fsync, rename, fsync of the folder.
    pub fn write_to(&self, path: &Path) -> Result<(), TransferError> {
        let io = |e: std::io::Error| TransferError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("account")
        ));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                // Sessions are credentials.
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&self.to_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads and checks a file.
    pub fn read_from(path: &Path) -> Result<AccountDump, TransferError> {
        let bytes = std::fs::read(path).map_err(|e| TransferError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        AccountDump::from_bytes(&bytes, &path.display().to_string())
    }
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SHA-256 (FIPS 180-4), for the integrity check of account files: small enough to keep here
/// rather than add a dependency for one call.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// `qqfleet account export|import`.
#[derive(Debug, clap::Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub cmd: AccountCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCmd {
    /// Write one account's whole durable state to stdout (the data directory must not be in
    /// use). The file holds the account's session credentials: keep it private (umask 077).
    Export {
        /// Folder of durable state.
        #[arg(long, default_value = "data")]
        data: std::path::PathBuf,
        /// The account id (its file name without `.toml`).
        id: String,
    },
    /// Load an account's state from a file written by `export` (the data directory must not
    /// be in use).
    Import {
        /// Folder of durable state.
        #[arg(long, default_value = "data")]
        data: std::path::PathBuf,
        /// Replace a different state the data directory already holds for the account.
        #[arg(long)]
        force: bool,
        /// The file written by `qqfleet account export`.
        file: std::path::PathBuf,
    },
}

/// Runs `qqfleet account ...`; the message for the operator on success.
pub fn account_cli(args: AccountArgs) -> Result<String, TransferError> {
    match args.cmd {
        AccountCmd::Export { data, id } => {
            if !data.join("db").exists() {
                return Err(TransferError::Io {
                    path: data.display().to_string(),
                    message: "no qqfleet data directory here".into(),
                });
            }
            let store = crate::store::SledStore::open(&data)?;
            let dump = store.export_account(&id)?;
            if dump.entries() == 0 {
                return Err(TransferError::Unknown(id));
            }
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&dump.to_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| TransferError::Io {
                    path: "stdout".into(),
                    message: e.to_string(),
                })?;
            Ok(format!(
                "exported account `{id}`: {} entries",
                dump.entries()
            ))
        }
        AccountCmd::Import { data, force, file } => {
            let dump = AccountDump::read_from(&file)?;
            let store = crate::store::SledStore::open(&data)?;
            let n = dump.entries();
            match store.import_account(&dump, force)? {
                Imported::Same => Ok(format!(
                    "account `{}` already holds exactly this state; nothing changed",
                    dump.id
                )),
                Imported::Written => Ok(format!("imported account `{}`: {n} entries", dump.id)),
            }
        }
    }
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// The data directory held exactly this state already.
    Same,
    /// The state was written (replacing whatever was there).
    Written,
}

impl crate::store::SledStore {
    /// Every stored key of the accounts in `ids`, by account and tree, in one pass over the
    /// whole store (the handoff exports many accounts at once).
    pub fn export_accounts(
        &self,
        ids: &std::collections::HashSet<String>,
    ) -> Result<BTreeMap<String, AccountDump>, StoreError> {
        let now = crate::store::now_secs();
        let mut out: BTreeMap<String, AccountDump> = BTreeMap::new();
        let db = self.sled()?;
        for name in db.tree_names() {
            let tree = db.open_tree(&name)?;
            let tname = String::from_utf8_lossy(&name).into_owned();
            for kv in tree.iter() {
                let (k, v) = kv?;
                let Some(owner) = crate::store::key_owner(&k) else {
                    continue;
                };
                let Ok(owner) = std::str::from_utf8(owner) else {
                    continue;
                };
                if !ids.contains(owner) {
                    continue;
                }
                out.entry(owner.to_string())
                    .or_insert_with(|| AccountDump {
                        id: owner.to_string(),
                        exported_at: now,
                        trees: Trees::new(),
                    })
                    .trees
                    .entry(tname.clone())
                    .or_default()
                    .push((k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// One account's whole stored state (empty trees when nothing is stored).
    pub fn export_account(&self, id: &str) -> Result<AccountDump, StoreError> {
        let ids = std::iter::once(id.to_string()).collect();
        Ok(self
            .export_accounts(&ids)?
            .remove(id)
            .unwrap_or_else(|| AccountDump {
                id: id.to_string(),
                exported_at: crate::store::now_secs(),
                trees: Trees::new(),
            }))
    }

    /// Deletes every stored key of `id`, flushed (after a handoff export).
    pub fn forget_account(&self, id: &str) -> Result<usize, StoreError> {
        let dump = self.export_account(id)?;
        let db = self.sled()?;
        for (t, kvs) in &dump.trees {
            let tree = db.open_tree(t)?;
            for (k, _) in kvs {
                tree.remove(k)?;
            }
        }
        crate::store::flush_sled(&db)?;
        Ok(dump.entries())
    }

    /// Writes `dump` as the account's whole state. A data directory that already holds a
    /// different state of the account is refused unless `replace`; the same state is a no-op.
    pub fn import_account(
        &self,
        dump: &AccountDump,
        replace: bool,
    ) -> Result<Imported, TransferError> {
        let existing = self.export_account(&dump.id)?;
        if existing.entries() > 0 {
            if existing.trees == dump.trees {
                return Ok(Imported::Same);
            }
            if !replace {
                return Err(TransferError::Conflict(dump.id.clone()));
            }
        }
        let db = self.sled()?;
        for (t, kvs) in &existing.trees {
            let tree = db.open_tree(t).map_err(StoreError::from)?;
            for (k, _) in kvs {
                tree.remove(k.as_slice()).map_err(StoreError::from)?;
            }
        }
        let mut max_seq = 0u64;
        let plen = dump.id.len() + 1;
        for (t, kvs) in &dump.trees {
            let tree = db.open_tree(t).map_err(StoreError::from)?;
            for (k, v) in kvs {
                if k.len() == plen + 8 && k.starts_with(dump.id.as_bytes()) && k[plen - 1] == 0 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&k[plen..]);
                    max_seq = max_seq.max(u64::from_be_bytes(b));
                }
                tree.insert(k.as_slice(), v.as_slice())
                    .map_err(StoreError::from)?;
            }
        }
        crate::store::flush_sled(&db).map_err(StoreError::from)?;
        self.raise_ids_above(max_seq)?;
        Ok(Imported::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_belong_to_their_account() {
        use crate::store::key_owner;
        assert_eq!(key_owner(b"bot-1"), Some(b"bot-1".as_slice()));
        assert_eq!(
            key_owner(b"bot\0\0\0\0\0\0\0\0\x07"),
            Some(b"bot".as_slice())
        );
        assert_eq!(key_owner(b"bot\0message\0xx"), Some(b"bot".as_slice()));
        assert_eq!(key_owner(b"hold\0bot"), Some(b"bot".as_slice()));
        // An account named like a tag keeps its own prefixed keys.
        assert_eq!(
            key_owner(b"hold\0\0\0\0\0\0\0\0\x07"),
            Some(b"hold".as_slice())
        );
        assert_eq!(key_owner(b"\0id_offset"), None);
        assert_eq!(key_owner(b"a b"), None);
    }

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    use crate::protocol::Target;
    use crate::state::AccountState;
    use crate::store::{DedupKey, NewOut, SledStore, Store};

    fn out(text: &str) -> NewOut {
        NewOut {
            target: Target::Buddy(7),
            text: text.into(),
            to_name: Some("friend".into()),
        }
    }

    fn fill(st: &SledStore, id: &str) {
        let s = crate::protocol::session::sample_session(4242);
        st.save_session(id, &s).unwrap();
        st.enqueue(id, out("one")).unwrap();
        let two = st.enqueue(id, out("two")).unwrap();
        st.enqueue(id, out("three")).unwrap();
        st.hold_outgoing(id, &two).unwrap();
        let key = DedupKey {
            poll_type: "message".into(),
            source: 9,
            msg_id: 77,
        };
        st.accept_incoming(id, &key, b"pending", 100).unwrap();
        st.save_contacts(id, b"{\"friends\":[]}", 5).unwrap();
        st.set_hold(id, Some(&(AccountState::Stopped, "kicked".into())))
            .unwrap();
        // A tree this module has never heard of, following the key convention.
        let t = st.sled().unwrap().open_tree("stable_ids").unwrap();
        t.insert(format!("{id}\0group:1"), b"1".as_slice()).unwrap();
    }

    /// Every tree moves, the other account stays, the copy works like the original, a
    /// different state is not overwritten without `replace`, and new sequence numbers come
    /// after the imported ones.
    #[test]
    fn export_import_round_trip_is_generic_and_careful() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let file = dir.path().join("acct.qqacct");
        {
            let st = SledStore::open(&a).unwrap();
            // Burn sequence numbers so the source's are far above a fresh store's.
            for i in 0..50 {
                st.enqueue("other", out(&format!("o{i}"))).unwrap();
            }
            fill(&st, "bot");
            let d = st.export_account("bot").unwrap();
            let trees: Vec<&str> = d.trees.keys().map(String::as_str).collect();
            assert_eq!(
                trees,
                [
                    "contacts",
                    "dedup",
                    "held",
                    "inbox",
                    "meta",
                    "outbox",
                    "sessions",
                    "stable_ids"
                ]
            );
            assert_eq!(d.trees["outbox"].len(), 2);
            d.write_to(&file).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "sessions are credentials");
        }
        let dump = AccountDump::read_from(&file).unwrap();
        let st = SledStore::open(&b).unwrap();
        st.enqueue("bot2", out("x")).unwrap();
        assert_eq!(st.import_account(&dump, false).unwrap(), Imported::Written);
        assert_eq!(st.import_account(&dump, false).unwrap(), Imported::Same);
        assert_eq!(st.load_session("bot").unwrap().unwrap().msg_id, 4242);
        let texts: Vec<String> = st
            .outbox("bot")
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["one", "three"]);
        assert_eq!(st.held("bot").unwrap()[0].text, "two");
        assert_eq!(st.inbox("bot").unwrap()[0].1, b"pending");
        assert_eq!(st.load_hold("bot").unwrap().unwrap().1, "kicked");
        assert_eq!(st.load_contacts("bot").unwrap().unwrap().1, 5);
        let key = DedupKey {
            poll_type: "message".into(),
            source: 9,
            msg_id: 77,
        };
        assert_eq!(
            st.accept_incoming("bot", &key, b"again", 101).unwrap(),
            None
        );
        assert_eq!(st.sled().unwrap().open_tree("stable_ids").unwrap().len(), 1);
        assert_eq!(
            st.outbox("bot2").unwrap().len(),
            1,
            "other accounts untouched"
        );
        // New messages queue behind the imported ones.
        let four = st.enqueue("bot", out("four")).unwrap();
        let texts: Vec<String> = st
            .outbox("bot")
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["one", "three", "four"]);
        assert!(st.outbox("bot").unwrap().iter().all(|m| m.seq <= four.seq));
        // Now the state differs from the file: refused without replace, replaced with it.
        let e = st.import_account(&dump, false).unwrap_err();
        assert!(matches!(e, TransferError::Conflict(_)), "{e}");
        assert_eq!(st.import_account(&dump, true).unwrap(), Imported::Written);
        assert_eq!(st.outbox("bot").unwrap().len(), 2);
        // Forgetting removes every key of the account and nothing else.
        assert!(st.forget_account("bot").unwrap() > 0);
        assert_eq!(st.export_account("bot").unwrap().entries(), 0);
        assert_eq!(st.outbox("bot2").unwrap().len(), 1);
        drop(st);
        // The sequence offset survives a reopen.
        let st = SledStore::open(&b).unwrap();
        st.import_account(&dump, true).unwrap();
        let five = st.enqueue("bot", out("five")).unwrap();
        let last = st.outbox("bot").unwrap().last().unwrap().clone();
        assert_eq!(last.seq, five.seq);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused() {
        let mut trees = Trees::new();
        trees.insert("sessions".into(), vec![(b"a".to_vec(), b"{}".to_vec())]);
        trees.insert(
            "outbox".into(),
            vec![(b"a\0\0\0\0\0\0\0\0\x07".to_vec(), b"{\"x\":1}".to_vec())],
        );
        let d = AccountDump {
            id: "a".into(),
            exported_at: 5,
            trees,
        };
        let bytes = d.to_bytes();
        assert_eq!(AccountDump::from_bytes(&bytes, "f").unwrap(), d);
        let text = String::from_utf8(bytes.clone()).unwrap();
        // One value changed: the hash no longer matches.
        let edited = text.replace("7b7d", "7b20");
        let e = AccountDump::from_bytes(edited.as_bytes(), "f").unwrap_err();
        assert!(e.to_string().contains("integrity check failed"), "{e}");
        let cut = &bytes[..bytes.len() / 2];
        assert!(AccountDump::from_bytes(cut, "f")
            .unwrap_err()
            .to_string()
            .contains("not an account file"));
        let v2 = text.replace("\"version\": 1", "\"version\": 2");
        assert!(AccountDump::from_bytes(v2.as_bytes(), "f")
            .unwrap_err()
            .to_string()
            .contains("version 2"));
    }
}
