//! The simulator's QR codes: found by `qrsig` or token in O(1), expired when looked at, and
//! bounded far above any fleet the simulator serves.
//!
//! The first version kept 2,048 codes in a list, searched it and expired every code on each
//! `ptqrlogin`: a fleet of 2,500 accounts saw its codes forgotten within seconds, and each
//! check cost a scan of all of them. Here a code lives until [`MAX_QRS`] newer ones were
//! issued (10,000 accounts each holding one code leave room for six more rounds), and a
//! code's expiry is decided when it is read, so a check costs two hash lookups.

use std::collections::{HashMap, VecDeque};

use super::world::{Qr, QrState};

/// Codes kept for `ptqrlogin` and `/sim/qr`; beyond it the oldest is forgotten.
pub const MAX_QRS: usize = 65_536;

/// Every QR code issued and not yet forgotten, oldest first.
#[derive(Debug, Default)]
pub struct QrBook {
    items: HashMap<u64, Qr>,
    /// Ids in the order issued.
    order: VecDeque<u64>,
    /// `qrsig` and token → id.
    keys: HashMap<String, u64>,
    next: u64,
}

/// Marks `q` expired when its lifetime is over and nothing final happened to it.
fn expire(q: &mut Qr, now: u64, lifetime_ms: u64) {
    if matches!(
        q.state,
        QrState::Waiting | QrState::Scanned | QrState::Confirmed
    ) && now.saturating_sub(q.created_ms) >= lifetime_ms
    {
        q.state = QrState::Expired;
    }
}

impl QrBook {
    /// Adds a code, forgetting the oldest beyond [`MAX_QRS`].
    pub fn push(&mut self, qr: Qr) {
        while self.order.len() >= MAX_QRS {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(q) = self.items.remove(&old) {
                self.keys.remove(&q.qrsig);
                self.keys.remove(&q.token);
            }
        }
        self.next += 1;
        let id = self.next;
        self.keys.insert(qr.qrsig.clone(), id);
        self.keys.insert(qr.token.clone(), id);
        self.order.push_back(id);
        self.items.insert(id, qr);
    }

    /// The code named by its `qrsig` or its token, expired first if its time is over.
    pub fn find_mut(&mut self, key: &str, now: u64, lifetime_ms: u64) -> Option<&mut Qr> {
        let id = self.keys.get(key)?;
        let q = self.items.get_mut(id)?;
        expire(q, now, lifetime_ms);
        Some(q)
    }

    /// Every code, oldest first, each expired first if its time is over.
    pub fn list(&mut self, now: u64, lifetime_ms: u64) -> Vec<&Qr> {
        for q in self.items.values_mut() {
            expire(q, now, lifetime_ms);
        }
        self.order
            .iter()
            .filter_map(|id| self.items.get(id))
            .collect()
    }

    /// Codes kept.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// No code kept.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qr(i: usize, at: u64) -> Qr {
        Qr {
            qrsig: format!("sig{i}"),
            token: format!("tok{i}"),
            state: QrState::Waiting,
            qq: None,
            created_ms: at,
        }
    }

    #[test]
    fn a_fleet_of_codes_is_kept_until_each_expires() {
        let mut b = QrBook::default();
        for i in 0..12_000 {
            b.push(qr(i, 1_000));
        }
        assert_eq!(b.len(), 12_000);
        // The first of 12,000 codes is still there and waiting, by qrsig and by token.
        let q = b.find_mut("sig0", 60_000, 120_000).unwrap();
        assert_eq!(q.state, QrState::Waiting);
        q.state = QrState::Scanned;
        assert_eq!(
            b.find_mut("tok0", 60_000, 120_000).unwrap().state,
            QrState::Scanned
        );
        // Past its lifetime it reads as expired; a used code stays used.
        b.find_mut("sig1", 0, 0).unwrap().state = QrState::Used;
        assert_eq!(
            b.find_mut("sig0", 121_000, 120_000).unwrap().state,
            QrState::Expired
        );
        assert_eq!(
            b.find_mut("sig1", 121_000, 120_000).unwrap().state,
            QrState::Used
        );
        let listed = b.list(121_000, 120_000);
        assert_eq!(listed.len(), 12_000);
        assert_eq!(listed[0].qrsig, "sig0");
        assert!(listed[2..].iter().all(|q| q.state == QrState::Expired));
    }

    #[test]
    fn the_oldest_is_forgotten_beyond_the_bound() {
        let mut b = QrBook::default();
        for i in 0..MAX_QRS + 3 {
            b.push(qr(i, 0));
        }
        assert_eq!(b.len(), MAX_QRS);
        assert!(b.find_mut("sig2", 0, 1).is_none());
        assert!(b.find_mut("tok2", 0, 1).is_none());
        assert!(b.find_mut("sig3", 0, 1).is_some());
        assert!(b.find_mut(&format!("tok{}", MAX_QRS + 2), 0, 1).is_some());
    }
}
