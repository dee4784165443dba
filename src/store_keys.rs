//! How the store lays out its keys and values: the one key convention every tree follows
//! (`<id>`, `<id>\0...`, `tag\0<id>`), which [`key_owner`] reads back for an account's
//! export, and the byte forms of sequence keys, dedup keys and their values. Records are
//! JSON (`encode`, `decode`), so a stored value is readable with any sled tool.

use serde::{Deserialize, Serialize};

use super::{DedupKey, StoreError};

/// The account a stored key belongs to, by the one key convention every tree follows:
/// the id itself (`sessions`, `contacts`), the id, NUL and more (`outbox`, `held`, `inbox`,
/// `dedup`: `id\0seq`...), or a tag without NUL, NUL and the id (`meta`: `hold\0id`). Ids are
/// `[A-Za-z0-9_-]` (config::valid_id), so the forms cannot be confused. A key of no account
/// (store-wide values start with NUL) gives `None`. `qqfleet account export` moves every key
/// this names, so a new tree that follows the convention moves with its account for free.
pub fn key_owner(key: &[u8]) -> Option<&[u8]> {
    let ok = |id: &[u8]| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    match key.iter().position(|&b| b == 0) {
        None => ok(key).then_some(key),
        Some(0) => None,
        Some(i) => {
            let (head, rest) = (&key[..i], &key[i + 1..]);
            if ok(head) && !(ok(rest) && is_tag(head)) {
                Some(head)
            } else if ok(rest) {
                Some(rest)
            } else {
                None
            }
        }
    }
}

/// Tags of `tag\0id` keys (a tag is never an account's own prefix form, whose rest is binary).
fn is_tag(head: &[u8]) -> bool {
    TAGS.contains(&head)
}

/// Every `tag` used in `tag\0id` keys. A module that adds such a key adds its tag here.
pub const TAGS: &[&[u8]] = &[b"hold"];

/// The meta key of the offset added to sled's id generator (see [`super::SledStore::next_id`]).
pub(super) const ID_OFFSET_KEY: &[u8] = b"\0id_offset";

/// The key prefix of everything an account owns in a tree (`<id>\0`): layers above the
/// fleet that keep their own trees (OneBot) key them the same way, so an account's data is
/// found (and exported) by this one prefix.
pub fn prefix(id: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k
}

pub(super) fn seq_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn dedup_key(id: &str, key: &DedupKey) -> Vec<u8> {
    let mut k = prefix(id);
    k.extend_from_slice(key.poll_type.as_bytes());
    k.push(0);
    k.extend_from_slice(&key.source.to_be_bytes());
    k.extend_from_slice(&key.msg_id.to_be_bytes());
    k
}

/// A dedup key's value: when it was recorded (unix seconds, what the pruning reads) and the
/// inbox seq of its record (what [`super::Store::restore_incoming`] compares). Stores written before
/// the seq was kept hold the time alone.
pub(super) fn dedup_value(now: u64, seq: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&now.to_be_bytes());
    v[8..].copy_from_slice(&seq.to_be_bytes());
    v
}

pub(super) fn dedup_time(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

pub(super) fn dedup_seq(v: &[u8]) -> Option<u64> {
    v.get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

pub(super) fn seq_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[key.len() - 8..]);
    u64::from_be_bytes(b)
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        message: e.to_string(),
    })
}

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("plain data serializes")
}
