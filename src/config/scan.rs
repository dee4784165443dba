//! The accounts folder, read as a whole: every `*.toml` parsed, and one QQ number per file.
//!
//! The watcher reads the folder again on every file event and on a periodic rescan (missed
//! events). At 10,000 accounts reading and parsing every file each time was most of an idle
//! fleet's work, so [`DirScan`] keeps what it read with each file's stamp (size, mtime,
//! ctime, inode) and reads again only the files whose stamp moved. A file edited in place
//! changes its mtime and ctime (nanoseconds on every Linux filesystem we run on); a file
//! replaced by rename changes its inode.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{id_of, locate, parse, AccountFile, ConfigError};

/// One entry of a scanned folder.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub id: String,
    pub path: PathBuf,
    /// The file's bytes hash, to notice a change without comparing settings.
    pub fingerprint: u64,
    pub file: Result<AccountFile, ConfigError>,
}

/// Reads every `*.toml` in `dir`, sorted by id. Two files with the same `qq` are both
/// reported: the second one (by id) is invalid, so one QQ number never logs in twice
/// (a second login kicks the first, WEBQQ.md §12).
pub fn scan_dir(dir: &Path) -> Result<Vec<Scanned>, ConfigError> {
    DirScan::default().scan(dir)
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// A folder scanner that remembers what it read: a rescan stats every file and reads only
/// those whose stamp changed since the last scan.
#[derive(Debug, Default)]
pub struct DirScan {
    read: HashMap<PathBuf, (Stamp, Scanned)>,
    /// Files read (opened and parsed) by the last scan: the rest came from the cache.
    last_reads: usize,
}

impl DirScan {
    /// Files the last [`DirScan::scan`] opened and parsed.
    pub fn last_reads(&self) -> usize {
        self.last_reads
    }

    /// The folder now, as [`scan_dir`] gives it.
    pub fn scan(&mut self, dir: &Path) -> Result<Vec<Scanned>, ConfigError> {
        let rd = std::fs::read_dir(dir).map_err(|e| ConfigError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut out = Vec::new();
        let mut kept = HashMap::with_capacity(self.read.len());
        self.last_reads = 0;
        for entry in rd.flatten() {
            let path = entry.path();
            let Some(id) = id_of(&path) else { continue };
            // Follows symlinks, as reading the file does.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let stamp = Stamp::of(&meta);
            let scanned = match self.read.remove(&path) {
                Some((was, s)) if was == stamp => s,
                _ => {
                    self.last_reads += 1;
                    read_one(id, &path)
                }
            };
            out.push(scanned.clone());
            kept.insert(path, (stamp, scanned));
        }
        self.read = kept;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        flag_duplicate_qq(&mut out);
        Ok(out)
    }
}

/// Reads and parses one account file.
fn read_one(id: String, path: &Path) -> Scanned {
    let (fingerprint, file) = match std::fs::read(path) {
        Ok(bytes) => {
            let fp = fingerprint(&bytes);
            match String::from_utf8(bytes) {
                Ok(text) => (fp, parse(path, &text)),
                Err(_) => (
                    fp,
                    Err(ConfigError::Invalid {
                        file: path.to_path_buf(),
                        line: 1,
                        key: "(file)".into(),
                        message: "not UTF-8".into(),
                    }),
                ),
            }
        }
        Err(e) => (
            0,
            Err(ConfigError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        ),
    };
    Scanned {
        id,
        path: path.to_path_buf(),
        fingerprint,
        file,
    }
}

/// The second file (by id) naming a QQ number already used is invalid.
fn flag_duplicate_qq(out: &mut [Scanned]) {
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    for s in out {
        if let Ok(f) = &s.file {
            if let Some(first) = seen.get(&f.qq) {
                let text = std::fs::read_to_string(&s.path).unwrap_or_default();
                s.file = Err(ConfigError::Invalid {
                    file: s.path.clone(),
                    line: locate(&text, "", "qq").unwrap_or(1),
                    key: "qq".into(),
                    message: format!("qq {} is already used by account `{first}`", f.qq),
                });
            } else {
                seen.insert(f.qq, s.id.clone());
            }
        }
    }
}

/// FNV-1a: stable across runs, good enough to notice an edited file.
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rescan reads only what changed, and still sees every kind of change: an edit in
    /// place (same size), a replacement by rename, a new file, a removal, and a duplicate QQ
    /// that appears in a file it did not read again.
    #[test]
    fn a_rescan_reads_only_changed_files_and_misses_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (id, qq) in [("a", 10001), ("b", 10002), ("c", 10003)] {
            std::fs::write(d.join(format!("{id}.toml")), format!("qq = {qq}\n")).unwrap();
        }
        let mut scan = DirScan::default();
        let first = scan.scan(d).unwrap();
        assert_eq!(scan.last_reads(), 3);
        assert!(first.iter().all(|s| s.file.is_ok()));

        let again = scan.scan(d).unwrap();
        assert_eq!(scan.last_reads(), 0, "nothing changed, nothing read");
        let fps = |v: &[Scanned]| v.iter().map(|s| s.fingerprint).collect::<Vec<_>>();
        assert_eq!(fps(&first), fps(&again));

        // Same size, new content, written in place.
        std::fs::write(d.join("a.toml"), "qq = 10009\n").unwrap();
        // Replaced by rename (as editors do).
        std::fs::write(d.join("b.tmp"), "qq = 10002\nenabled = false\n").unwrap();
        std::fs::rename(d.join("b.tmp"), d.join("b.toml")).unwrap();
        std::fs::remove_file(d.join("c.toml")).unwrap();
        std::fs::write(d.join("d.toml"), "qq = 10009\n").unwrap();
        let s = scan.scan(d).unwrap();
        assert_eq!(scan.last_reads(), 3, "a, b and d read again");
        let ids: Vec<_> = s.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "d"]);
        assert_eq!(s[0].file.as_ref().unwrap().qq, 10009);
        assert!(!s[1].file.as_ref().unwrap().enabled);
        let dup = s[2].file.as_ref().unwrap_err().to_string();
        assert!(dup.contains("already used by account `a`"), "{dup}");

        // The duplicate goes away when a changes, though d itself is not read again.
        std::fs::write(d.join("a.toml"), "qq = 10001\n").unwrap();
        let s = scan.scan(d).unwrap();
        assert_eq!(scan.last_reads(), 1);
        assert_eq!(s[2].file.as_ref().unwrap().qq, 10009);
    }
}
