//! Stable OneBot ids for WebQQ contacts, and message ids.
//!
//! WebQQ gives only pseudo uins that change with every session (WEBQQ.md §1). A bot keeps
//! `user_id` and `group_id` in its database, so they must not change: each contact gets an
//! int64 assigned on first sight and kept per account, keyed on what identifies the contact
//! across sessions: its name, the same identity the outbox follows a target by into a new
//! session (friend markname else nick, group markname else name, discussion name).
//!
//! Limits, documented in docs/ONEBOT.md: a rename makes a new id (the old one stays mapped to
//! the old name and cannot be sent to); two contacts with one name share an id, and a send to
//! it is refused as ambiguous by the contact lookup; a message that arrives before the
//! session's contacts are known gets an id keyed on its pseudo uin, valid for that session
//! only.
//!
//! Everything lives in the sled tree `onebot_ids`, keyed with the account's prefix
//! (`store::prefix`), so an account's export finds it with the rest of its data.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{prefix, NamedTree, StoreError};

/// First id handed out (ids are per account; starting high keeps them apart from small
/// numbers a bot may use as sentinels).
const FIRST_ID: i64 = 1_000_001;

/// What a stable id stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKey {
    /// A friend, by markname else nick.
    Friend(String),
    /// A group, by markname else name.
    Group(String),
    /// A discussion, by name.
    Discuss(String),
    /// A member of a group or discussion who is not a friend: the conversation's name and the
    /// member's card else nick.
    Member { within: String, name: String },
    /// Seen before the session's contacts were known: the pseudo uin of that session.
    Session { kind: String, uin: u64 },
}

/// The id tables of one account.
pub struct Ids {
    tree: NamedTree,
    account: String,
    /// Allocation is check-then-insert: one at a time per account.
    lock: Mutex<()>,
}

fn key(account: &str, tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = prefix(account);
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

fn i64_of(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.try_into().ok()?))
}

impl Ids {
    pub fn new(tree: NamedTree, account: &str) -> Ids {
        Ids {
            tree,
            account: account.to_string(),
            lock: Mutex::new(()),
        }
    }

    /// The stable id of a contact, assigned (and flushed) on first sight.
    pub fn id_of(&self, contact: &ContactKey) -> Result<i64, StoreError> {
        let name = serde_json::to_vec(contact).expect("plain data serializes");
        let fwd = key(&self.account, b'k', &name);
        let tree = self.tree.get()?;
        if let Some(v) = tree.get(&fwd)? {
            if let Some(id) = i64_of(&v) {
                return Ok(id);
            }
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = tree.get(&fwd)? {
            if let Some(id) = i64_of(&v) {
                return Ok(id);
            }
        }
        let counter = key(&self.account, b'n', b"");
        let id = match tree.get(&counter)? {
            Some(v) => i64_of(&v).unwrap_or(FIRST_ID),
            None => FIRST_ID,
        };
        let mut batch = sled::Batch::default();
        batch.insert(counter, &(id + 1).to_be_bytes());
        batch.insert(fwd, &id.to_be_bytes());
        batch.insert(key(&self.account, b'i', &id.to_be_bytes()), name);
        tree.apply_batch(batch)?;
        crate::store::flush_sled(&tree)?;
        Ok(id)
    }

    /// What an id stands for (`None`: never assigned by this account).
    pub fn contact(&self, id: i64) -> Result<Option<ContactKey>, StoreError> {
        match self
            .tree
            .get()?
            .get(key(&self.account, b'i', &id.to_be_bytes()))?
        {
            Some(v) => Ok(serde_json::from_slice(&v).ok()),
            None => Ok(None),
        }
    }

    /// A new message id, unique in this account (int32, positive, wraps after 2^31-1). Made
    /// durable by the write that uses it (the event or the outbox entry, both flushed).
    pub fn next_message_id(&self) -> Result<i32, StoreError> {
        let counter = key(&self.account, b'm', b"");
        let v = self.tree.get()?.update_and_fetch(&counter, |old| {
            let n = old
                .and_then(|o| <[u8; 4]>::try_from(o).ok())
                .map(i32::from_be_bytes)
                .unwrap_or(0);
            let next = if (0..i32::MAX).contains(&n) { n + 1 } else { 1 };
            Some(next.to_be_bytes().to_vec())
        })?;
        Ok(v.and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(i32::from_be_bytes)
            .unwrap_or(1))
    }

    /// Remembers the message id answered for an outbox entry (for its outcome event).
    pub fn remember_sent(&self, seq: u64, message_id: i32) -> Result<(), StoreError> {
        self.tree.get()?.insert(
            key(&self.account, b's', &seq.to_be_bytes()),
            &message_id.to_be_bytes(),
        )?;
        Ok(())
    }

    /// The message id of an outbox entry, forgotten once read (the outcome is final).
    pub fn take_sent(&self, seq: u64) -> Result<Option<i32>, StoreError> {
        Ok(self
            .tree
            .get()?
            .remove(key(&self.account, b's', &seq.to_be_bytes()))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(i32::from_be_bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn ids_are_stable_across_reopen_and_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let alice = ContactKey::Friend("Alice".into());
        let grp = ContactKey::Group("Rust".into());
        let (a1, g1, m1);
        {
            let db = sled::open(dir.path()).unwrap();
            let ids = Ids::new(NamedTree::new(Arc::new(db.clone()), "onebot_ids"), "acc");
            a1 = ids.id_of(&alice).unwrap();
            g1 = ids.id_of(&grp).unwrap();
            assert_ne!(a1, g1);
            assert_eq!(ids.id_of(&alice).unwrap(), a1);
            assert_eq!(ids.contact(g1).unwrap(), Some(grp.clone()));
            assert_eq!(ids.contact(42).unwrap(), None);
            m1 = ids.next_message_id().unwrap();
            assert_eq!(ids.next_message_id().unwrap(), m1 + 1);
            ids.remember_sent(9, m1).unwrap();
            assert_eq!(ids.take_sent(9).unwrap(), Some(m1));
            assert_eq!(ids.take_sent(9).unwrap(), None);
            db.flush().unwrap();
        }
        let db = crate::store::tests::sled_reopen(dir.path());
        let ids = Ids::new(NamedTree::new(Arc::new(db.clone()), "onebot_ids"), "acc");
        assert_eq!(ids.id_of(&alice).unwrap(), a1);
        assert_eq!(ids.id_of(&grp).unwrap(), g1);
        assert!(ids.next_message_id().unwrap() > m1 + 1);
        let other = Ids::new(NamedTree::new(Arc::new(db.clone()), "onebot_ids"), "acc2");
        assert_eq!(other.contact(a1).unwrap(), None);
    }
}
