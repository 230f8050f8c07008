//! Event-time rendering: canonical RFC 3339 UTC with milliseconds, fast, and the
//! occasional offset form.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

const MS_PER_DAY: i64 = 86_400_000;

/// Appends `ms` (milliseconds since the epoch, years 0..=9999) as
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the same text as chrono's
/// `to_rfc3339_opts(SecondsFormat::Millis, true)`.
pub(crate) fn push_utc_millis(out: &mut String, ms: i64) {
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let secs = in_day / 1000;
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, month, 2);
    out.push('-');
    push_digits(out, day, 2);
    out.push('T');
    push_digits(out, secs / 3600, 2);
    out.push(':');
    push_digits(out, secs / 60 % 60, 2);
    out.push(':');
    push_digits(out, secs % 60, 2);
    out.push('.');
    push_digits(out, in_day % 1000, 3);
    out.push('Z');
}

/// Appends the same instant as local time at `offset_secs` east of UTC, e.g.
/// `2026-11-01T01:07:03.123+01:00`. Falls back to the UTC form if chrono cannot
/// represent it.
pub(crate) fn push_with_offset(out: &mut String, ms: i64, offset_secs: i32) {
    match (
        DateTime::<Utc>::from_timestamp_millis(ms),
        FixedOffset::east_opt(offset_secs),
    ) {
        (Some(t), Some(offset)) => {
            out.push_str(
                &t.with_timezone(&offset)
                    .to_rfc3339_opts(SecondsFormat::Millis, false),
            );
        }
        _ => push_utc_millis(out, ms),
    }
}

fn push_digits(out: &mut String, value: i64, width: usize) {
    let mut buf = [b'0'; 4];
    let mut v = value.unsigned_abs();
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    for &b in &buf[..width] {
        out.push(char::from(b));
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn chrono_millis(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    #[test]
    fn matches_chrono() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let fixed = [
            0,
            1,
            999,
            951_782_400_000,
            1_793_491_623_123,
            253_402_300_799_999,
        ];
        for ms in fixed
            .into_iter()
            .chain((0..10_000).map(|_| rng.random_range(0..253_402_300_800_000)))
        {
            let mut s = String::new();
            push_utc_millis(&mut s, ms);
            assert_eq!(s, chrono_millis(ms), "{ms}");
        }
    }

    #[test]
    fn offset_form_is_the_same_instant() {
        let mut s = String::new();
        push_with_offset(&mut s, 1_793_491_623_123, 3600);
        assert_eq!(s, "2026-11-01T01:07:03.123+01:00");
        let parsed = DateTime::parse_from_rfc3339(&s).unwrap();
        assert_eq!(parsed.timestamp_millis(), 1_793_491_623_123);
    }
}
