//! Jira's `X-RateLimit-Reset`: an ISO-8601 UTC timestamp, not epoch seconds, so the
//! SDK's reset parsing does not apply. Atlassian documents the format as
//! `yyyy-MM-ddTHH:mmZ` (minute precision); seconds, fractions and numeric offsets are
//! accepted too.
//!
//! A tiny parser rather than a date crate: chrono/time would add tens of KB to every
//! guest for one header. With minute precision the reset lies somewhere in that minute,
//! so we wait for its end: Atlassian answers an early retry with the same or a longer
//! penalty, so erring late is cheaper than erring early.
//! Must never: panic on a malformed value (it comes from the network).

/// Milliseconds from `now_ms` (since the epoch) until the reset `value` names; 0 when
/// it is in the past, `None` when `value` is not a timestamp we understand.
pub fn wait_ms(value: &str, now_ms: u64) -> Option<u64> {
    Some(
        reset_epoch_secs(value)?
            .saturating_mul(1000)
            .saturating_sub(now_ms),
    )
}

/// The reset instant in seconds since the epoch, rounded up to the end of the minute
/// when the value has no seconds.
pub fn reset_epoch_secs(value: &str) -> Option<u64> {
    let v = value.trim();
    let (date, time) = v.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let year: i64 = num(d.next()?, 4)?;
    let month: i64 = num(d.next()?, 2)?;
    let day: i64 = num(d.next()?, 2)?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Split the offset off the clock time.
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return None;
        }
        let hours: i64 = num(&digits[..2], 2)?;
        let minutes: i64 = num(&digits[2..], 2)?;
        (c, sign * (hours * 3600 + minutes * 60))
    };
    let mut t = clock.split(':');
    let hour: i64 = num(t.next()?, 2)?;
    let minute: i64 = num(t.next()?, 2)?;
    let second: i64 = match t.next() {
        // No seconds: the end of the minute.
        None => 60,
        Some(s) => {
            let (whole, fraction) = s.split_once(['.', ',']).unwrap_or((s, ""));
            let whole: i64 = num(whole, 2)?;
            let rounds_up = fraction.chars().any(|c| c != '0');
            if !fraction.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            whole + i64::from(rounds_up)
        }
    };
    if t.next().is_some() || hour > 23 || minute > 59 || second > 61 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(secs).ok()
}

/// Exactly `len` ASCII digits.
fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(reset_epoch_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            reset_epoch_secs("2026-11-25T21:40:00Z"),
            Some(1_795_642_800)
        );
        assert_eq!(reset_epoch_secs("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(
            reset_epoch_secs("2026-11-25T22:40:00+01:00"),
            Some(1_795_642_800)
        );
        assert_eq!(
            reset_epoch_secs("2026-11-25T21:10:00-0030"),
            Some(1_795_642_800)
        );
    }

    #[test]
    fn minute_precision_means_the_end_of_the_minute() {
        // Atlassian's documented `yyyy-MM-ddTHH:mmZ`.
        assert_eq!(
            reset_epoch_secs("2026-11-25T21:40Z"),
            Some(1_795_642_800 + 60)
        );
        assert_eq!(
            reset_epoch_secs("2026-11-25T21:40:00.250Z"),
            Some(1_795_642_801)
        );
    }

    #[test]
    fn waits_are_relative_to_now_and_never_negative() {
        let reset = 1_795_642_800_u64;
        let now = (reset - 30) * 1000 + 500;
        assert_eq!(wait_ms("2026-11-25T21:40:00Z", now), Some(29_500));
        assert_eq!(wait_ms("2026-11-25T21:40:00Z", reset * 1000 + 1), Some(0));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "1796161200",
            "2026-11-25",
            "2026-13-01T00:00Z",
            "2026-11-25T24:00Z",
            "2026-11-25T21:40",
            "2026-11-25T21:40:00+1",
            "26-11-25T21:40Z",
            "2026-11-25T21:40:0xZ",
            "2026-11-25T21:40:00.5aZ",
            "２026-11-25T21:40Z",
        ] {
            assert_eq!(reset_epoch_secs(bad), None, "{bad}");
        }
    }
}
