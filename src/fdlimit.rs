//! The open-file limit: every parked long poll is one socket, so a fleet of N accounts
//! needs about N descriptors and meets this limit long before memory or CPU.
//!
//! At start `qqfleet run` and `qqfleet sim` raise the soft limit (often 1,024) to the hard
//! one, say so in the log, and the fleet refuses to start when its accounts cannot fit
//! rather than failing accept() and connect() at random later.

/// Descriptors an account needs: its parked poll (its own connection, `protocol::poll_conn`).
pub const PER_ACCOUNT: u64 = 1;
/// Accounts per extra descriptor for bursts: a wave of sends (or logins) opens connections
/// in the shared pool, which keeps them until they idle out (measured when the polls still
/// went through the pool: 12,333 connections for 10,000 accounts, `protocol::pool`).
pub const ACCOUNTS_PER_BURST_FD: u64 = 4;
/// Descriptors the process needs besides the accounts: the store, the admin API and its
/// clients, logs, the runtime, sends and contacts refreshes in flight.
pub const RESERVE: u64 = 256;
/// Log files the `log` handlers of the whole process keep open at once (the first opened
/// is closed first), at least: one file per account would double what the fleet needs. A
/// limit with room to spare allows more ([`log_files_for`]).
pub const LOG_FILES: u64 = 256;

static LOG_FILES_OPEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(LOG_FILES);

/// How many log files may be open at once in this process ([`set_log_files`]).
pub fn log_files() -> u64 {
    LOG_FILES_OPEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets [`log_files`] (at start, from [`log_files_for`]).
pub fn set_log_files(n: u64) {
    LOG_FILES_OPEN.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Log files a fleet of `accounts` may keep open under `limit`: half of what the limit
/// leaves beyond [`needed`], and at least [`LOG_FILES`]. At 5,000 logging accounts under a
/// limit of 20,000 every file stays open (a reopen per message otherwise); at 10,000 about
/// 3,200 do, and the others take turns.
pub fn log_files_for(accounts: u64, max_logins: u64, limit: NoFile) -> u64 {
    (limit.soft.saturating_sub(needed(accounts, max_logins)) / 2).max(LOG_FILES)
}

/// The soft and hard `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    pub soft: u64,
    pub hard: u64,
}

/// The current limit.
pub fn current() -> std::io::Result<NoFile> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NoFile {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

/// Raises the soft limit to the hard one; returns the limit before and after.
pub fn raise() -> std::io::Result<(NoFile, NoFile)> {
    let before = current()?;
    if before.soft < before.hard {
        let r = libc::rlimit {
            rlim_cur: before.hard,
            rlim_max: before.hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, current()?))
}

/// Descriptors a fleet of `accounts` needs with `max_logins` logins in progress.
pub fn needed(accounts: u64, max_logins: u64) -> u64 {
    accounts * PER_ACCOUNT
        + accounts / ACCOUNTS_PER_BURST_FD
        + max_logins.min(accounts)
        + RESERVE
        + LOG_FILES
}

/// Why a fleet does not fit, in words for the operator; `None` when it fits.
pub fn misfit(accounts: u64, max_logins: u64, limit: NoFile) -> Option<String> {
    let need = needed(accounts, max_logins);
    (need > limit.soft).then(|| {
        format!(
            "{accounts} accounts need about {need} open files, but the limit is {} (hard limit {}): \
raise it (`ulimit -n`, LimitNOFILE= in a systemd unit) or run fewer accounts in this process",
            limit.soft, limit.hard
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (before, after) = raise().unwrap();
        assert_eq!(after.soft, after.hard);
        assert_eq!(before.hard, after.hard);
    }

    #[test]
    fn log_files_take_half_of_the_room_left() {
        let limit = NoFile {
            soft: 20_000,
            hard: 20_000,
        };
        assert!(log_files_for(5_000, 256, limit) >= 5_000);
        let at_10k = log_files_for(10_000, 256, limit);
        assert!((LOG_FILES..=(20_000 - needed(10_000, 256)) / 2).contains(&at_10k));
        let small = NoFile {
            soft: 1_024,
            hard: 1_024,
        };
        assert_eq!(log_files_for(900, 256, small), LOG_FILES);
    }

    #[test]
    fn a_fleet_too_big_for_the_limit_is_named() {
        let limit = NoFile {
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(misfit(10_000, 256, limit), None);
        let why = misfit(25_000, 256, limit).unwrap();
        assert!(why.contains("25000 accounts"), "{why}");
        assert!(why.contains("20000"), "{why}");
    }
}
