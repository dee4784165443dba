//! Shards: which of N `qqfleet run` processes runs an account.
//!
//! A QQ number logged in twice kicks its first session (WEBQQ.md §12), so processes sharing one
//! `accounts/` folder must agree, without talking to each other, on exactly one owner per
//! account. The owner is a pure function of the account id and N: a jump consistent hash
//! (Lamping and Veach) of a fixed 64-bit FNV-1a hash of the id. Both are stable across builds,
//! platforms and Rust versions (std's `DefaultHasher` is not), and going from N to N+1 moves
//! only about 1/(N+1) of the accounts, all of them to the new shard.
//!
//! On the floor of the layer rule: the store (handoff), the fleet and the API all ask it.

use std::fmt;

/// Errors of the shard layer (a bad `--shard` or host name).
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `--shard` is not `I/N` with `0 <= I < N`.
    #[error("--shard `{0}`: expected I/N with 0 <= I < N, e.g. 0/3")]
    Spec(String),
    /// The host name has no ordinal suffix.
    #[error("--shard-from-hostname: host name `{0}` does not end in -<ordinal> (a StatefulSet pod is named like qqfleet-2)")]
    Hostname(String),
    /// `--shard-from-hostname` without `--shards N`.
    #[error("--shard-from-hostname needs --shards N (the StatefulSet's replicas)")]
    NoCount,
}

/// This process's place among N: shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = ShardError;
    /// `I/N`, e.g. `1/3`.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Spec(s.to_string());
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The whole fleet in one process.
    pub const ALONE: Shard = Shard { index: 0, count: 1 };

    /// The shard of a StatefulSet pod: the ordinal after the last `-` of its host name
    /// (`qqfleet-2` → 2). An ordinal not below `count` is kept: that pod owns nothing and
    /// hands its accounts off (lower `--shards` first, then the replicas, to scale down).
    pub fn from_hostname(host: &str, count: u32) -> Result<Shard, ShardError> {
        let host = host.trim();
        // A fully qualified name (qqfleet-2.qqfleet.ns.svc...) keeps the pod name first.
        let pod = host.split('.').next().unwrap_or(host);
        let index: u32 = pod
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .ok_or_else(|| ShardError::Hostname(host.to_string()))?;
        Ok(Shard { index, count })
    }

    /// The host name: `$HOSTNAME` (set in every Kubernetes container), else gethostname(2).
    pub fn hostname() -> String {
        if let Ok(h) = std::env::var("HOSTNAME") {
            if !h.trim().is_empty() {
                return h;
            }
        }
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is ours and its length is passed; the name is NUL-terminated or
        // truncated, and we stop at the first NUL.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }

    /// The shard that runs account `id` among `self.count`.
    pub fn owner_of(&self, id: &str) -> u32 {
        owner(id, self.count)
    }

    /// Whether this process runs account `id`. A shard whose index is not below the count
    /// (a StatefulSet pod about to be scaled away) owns nothing: it hands everything off.
    pub fn owns(&self, id: &str) -> bool {
        self.index < self.count && self.owner_of(id) == self.index
    }
}

/// 64-bit FNV-1a: a fixed, documented hash (so every process and every version agrees).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Jump consistent hash: the bucket in `0..buckets` of `key`.
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

/// The owning shard of account `id` among `count` (0 for `count` 0 or 1).
pub fn owner(id: &str, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    jump(fnv1a64(id.as_bytes()), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_host_names() {
        assert_eq!(
            "1/3".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 3 }
        );
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", "1/3/4", ""] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("I/N"), "{bad}: {e}");
        }
        assert_eq!(
            Shard::from_hostname("qqfleet-2", 3).unwrap(),
            Shard { index: 2, count: 3 }
        );
        assert_eq!(
            Shard::from_hostname("my-fleet-0.qqfleet.default.svc.cluster.local", 4).unwrap(),
            Shard { index: 0, count: 4 }
        );
        // Past the count: a draining pod that owns nothing.
        let drain = Shard::from_hostname("qqfleet-3", 3).unwrap();
        assert!((0..50).all(|i| !drain.owns(&format!("a{i}"))));
        assert!(matches!(
            Shard::from_hostname("laptop", 3),
            Err(ShardError::Hostname(_))
        ));
    }

    /// Fixed values: the mapping is part of the on-disk contract between processes (and
    /// versions) sharing one accounts folder, so it must never change by accident.
    #[test]
    fn the_mapping_is_pinned() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let got: Vec<u32> = (0..10).map(|i| owner(&format!("bot{i}"), 3)).collect();
        let again: Vec<u32> = (0..10).map(|i| owner(&format!("bot{i}"), 3)).collect();
        assert_eq!(got, again);
        assert_eq!(owner("anything", 1), 0);
        // Pinned: computed once, and checked against an independent script of the paper's
        // algorithm.
        assert_eq!(got, PINNED_BOT0_9_OF_3);
    }

    const PINNED_BOT0_9_OF_3: [u32; 10] = [0, 2, 1, 1, 2, 1, 2, 0, 2, 2];

    /// Every shard gets a fair share, and N → N+1 moves about 1/(N+1), only to the new shard.
    #[test]
    fn balanced_and_minimal_movement() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("acct-{i}")).collect();
        let mut per = [0u32; 3];
        for id in &ids {
            per[owner(id, 3) as usize] += 1;
        }
        for n in per {
            assert!((3_000..3_700).contains(&n), "{per:?}");
        }
        let mut moved = 0;
        for id in &ids {
            let (a, b) = (owner(id, 3), owner(id, 4));
            if a != b {
                assert_eq!(b, 3, "{id} moved between old shards");
                moved += 1;
            }
        }
        assert!((2_200..2_800).contains(&moved), "moved {moved} of 10000");
    }
}
