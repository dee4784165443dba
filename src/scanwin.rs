//! The scan window: the hours of the day (local time) in which an operator is willing to
//! scan QR codes, `[scan] window = "09:00-22:00"` in an account file or
//! `qqfleet run --scan-window` for the fleet.
//!
//! A web login dies about 48 h after its QR scan whatever the client does (WEBQQ.md §11).
//! When that forecast falls outside the window, the account asks for its fresh scan at the
//! last opening of the window before the expiry, while the old session still serves. This
//! module is only the arithmetic (pure, on unix seconds and a UTC offset); the account
//! actor decides when to act on it.
//!
//! Local time is the process's: the UTC offset at an instant comes from the C library's
//! `localtime_r` (so `TZ` and `/etc/localtime` apply, daylight saving included). Run the
//! fleet with `TZ=UTC` to give windows in UTC.

use std::fmt;

const DAY: i64 = 86_400;

/// A daily window `[start, end)` in minutes after local midnight; `start > end` wraps
/// midnight (`22:00-06:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct ScanWindow {
    start: u16,
    end: u16,
}

impl From<ScanWindow> for String {
    fn from(w: ScanWindow) -> String {
        w.to_string()
    }
}

impl fmt::Display for ScanWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

fn hhmm(s: &str) -> Result<u16, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("`{}` is not HH:MM", s.trim()))?;
    let h: u16 = h
        .parse()
        .map_err(|_| format!("`{}` is not HH:MM", s.trim()))?;
    let m: u16 = m
        .parse()
        .map_err(|_| format!("`{}` is not HH:MM", s.trim()))?;
    if h > 23 || m > 59 || s.trim().len() != 5 {
        return Err(format!("`{}` is not a time of day HH:MM", s.trim()));
    }
    Ok(h * 60 + m)
}

impl std::str::FromStr for ScanWindow {
    type Err = String;
    /// `"HH:MM-HH:MM"`, both ends on the 24-hour clock; equal ends are refused (an empty
    /// or a whole-day window is better said by leaving the key out).
    fn from_str(s: &str) -> Result<ScanWindow, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not \"HH:MM-HH:MM\""))?;
        let (start, end) = (hhmm(a)?, hhmm(b)?);
        if start == end {
            return Err(format!(
                "`{s}`: start and end are equal (leave the key out for no window)"
            ));
        }
        Ok(ScanWindow { start, end })
    }
}

impl ScanWindow {
    /// Whether a local time of day (seconds after local midnight) is inside.
    pub fn contains(&self, local_secs_of_day: i64) -> bool {
        let m = (local_secs_of_day.rem_euclid(DAY) / 60) as u16;
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }

    /// When a login forecast to die at `expiry` (unix seconds) should be renewed: `None`
    /// when the expiry falls inside the window (the scan it then needs is asked for in
    /// working hours anyway), else the last opening of the window before it. `offset(t)` is
    /// the local UTC offset in seconds at instant `t` ([`local_offset`] in the fleet).
    pub fn renew_at(&self, expiry: i64, offset: impl Fn(i64) -> i64) -> Option<i64> {
        let local = expiry + offset(expiry);
        if self.contains(local) {
            return None;
        }
        let midnight = local - local.rem_euclid(DAY);
        let mut open = midnight + i64::from(self.start) * 60;
        if open > local {
            open -= DAY;
        }
        // Back to UTC with the offset at that opening (a daylight-saving change between
        // the opening and the expiry moves it by the change, as a wall clock would).
        let guess = open - offset(expiry);
        Some(open - offset(guess))
    }
}

/// The local UTC offset (seconds east) at unix second `t`, from `localtime_r`.
pub fn local_offset(t: i64) -> i64 {
    let tt = t as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` it is given; both live on this stack.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&tt, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> ScanWindow {
        s.parse().unwrap()
    }
    const H: i64 = 3600;
    /// A UTC midnight.
    const D0: i64 = 1_795_996_800;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(w("09:00-22:00").to_string(), "09:00-22:00");
        assert_eq!(w(" 22:30 - 06:05 ").to_string(), "22:30-06:05");
        for bad in [
            "9-22",
            "09:00",
            "24:00-01:00",
            "09:60-10:00",
            "10:00-10:00",
            "9:00-10:00",
        ] {
            assert!(bad.parse::<ScanWindow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn contains_plain_and_wrapping() {
        let day = w("09:00-22:00");
        assert!(day.contains(9 * H));
        assert!(day.contains(22 * H - 1));
        assert!(!day.contains(22 * H));
        assert!(!day.contains(3 * H));
        let night = w("22:00-06:00");
        assert!(night.contains(23 * H));
        assert!(night.contains(2 * H));
        assert!(!night.contains(6 * H));
        assert!(!night.contains(12 * H));
        assert!(
            night.contains(-H),
            "negative local seconds wrap to the previous day"
        );
    }

    #[test]
    fn expiry_inside_needs_no_renewal() {
        let utc = |_| 0;
        assert_eq!(w("09:00-22:00").renew_at(D0 + 15 * H, utc), None);
        assert_eq!(w("22:00-06:00").renew_at(D0 + 3 * H, utc), None);
    }

    #[test]
    fn renewal_at_the_last_opening_before_expiry() {
        let utc = |_| 0;
        // Dies at 03:00: renew at 09:00 the day before.
        assert_eq!(
            w("09:00-22:00").renew_at(D0 + 3 * H, utc),
            Some(D0 - 24 * H + 9 * H)
        );
        // Dies at 23:00: renew at 09:00 the same day.
        assert_eq!(
            w("09:00-22:00").renew_at(D0 + 23 * H, utc),
            Some(D0 + 9 * H)
        );
        // A window across midnight, death at noon: renew at 22:00 the evening before.
        assert_eq!(
            w("22:00-06:00").renew_at(D0 + 12 * H, utc),
            Some(D0 - 2 * H)
        );
    }

    #[test]
    fn renewal_follows_the_local_offset() {
        // UTC+8: dies at 19:00 UTC = 03:00 local next day; 09:00 local = 01:00 UTC.
        let cst = |_| 8 * H;
        assert_eq!(w("09:00-22:00").renew_at(D0 + 19 * H, cst), Some(D0 + H));
        // UTC-5: 09:00 local is 14:00 UTC.
        let est = |_| -5 * H;
        assert_eq!(
            w("09:00-22:00").renew_at(D0 + 6 * H, est),
            Some(D0 - 24 * H + 14 * H)
        );
    }

    #[test]
    fn local_offset_is_sane() {
        let o = local_offset(D0);
        assert!(o.abs() <= 14 * H, "{o}");
    }
}
