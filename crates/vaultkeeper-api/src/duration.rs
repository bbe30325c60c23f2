//! The one duration grammar of vaultkeeper: retention ages, token periods and every job
//! flag that takes a length of time.
//!
//! The CRD's CEL rule, the operator's validation, the rendered Job environment and the Job's
//! own flag parsing all come from the unit table and digit limit below, so a value the API
//! server accepts is a value every Job accepts, with the same number of seconds. Before
//! there was one table, `1h30m` passed the CRD and failed every backup Job at start, and
//! `2w`, which the backup command offered, was refused by the CRD.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// One unit of the grammar: the letter written after the number and what it is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The letter that follows the number, e.g. `h`.
    pub letter: char,
    /// The unit's name in messages, e.g. `hours`.
    pub name: &'static str,
    /// Seconds in one of it.
    pub seconds: i64,
}

/// The units, largest first: the order a duration must write them in.
pub const UNITS: [Unit; 5] = [
    Unit {
        letter: 'w',
        name: "weeks",
        seconds: 7 * 86_400,
    },
    Unit {
        letter: 'd',
        name: "days",
        seconds: 86_400,
    },
    Unit {
        letter: 'h',
        name: "hours",
        seconds: 3_600,
    },
    Unit {
        letter: 'm',
        name: "minutes",
        seconds: 60,
    },
    Unit {
        letter: 's',
        name: "seconds",
        seconds: 1,
    },
];

/// The most digits one number may have. Nine digits cover every sensible length
/// (`999999999s` is 31 years) and keep the largest duration the grammar can write,
/// about 22 million years, far inside an `i64` of seconds: no sum can overflow, so the
/// API server's regular expression alone decides what is a duration.
pub const MAX_DIGITS: usize = 9;

/// The longest text the grammar accepts: every unit, each with the most digits. The CRD
/// declares it as the fields' `maxLength`, which the API server needs to bound the cost
/// of the rule.
pub const MAX_LENGTH: usize = UNITS.len() * (MAX_DIGITS + 1);

/// The largest number one unit may carry.
const MAX_COUNT: i64 = 10_i64.pow(MAX_DIGITS as u32) - 1;

/// The grammar as an anchored regular expression, in the RE2 subset that both the
/// Kubernetes API server's CEL `matches()` and the Rust `regex` crate read the same way.
/// It also matches the empty text, which [`cel_rule`] and the parser refuse separately.
pub fn pattern() -> String {
    let groups: String = UNITS
        .iter()
        .map(|unit| format!("(?:([0-9]{{1,{MAX_DIGITS}}}){})?", unit.letter))
        .collect();
    format!("^{groups}$")
}

/// The CEL expression the CRD carries on a duration field (`self` is the string).
pub fn cel_rule() -> String {
    format!("self != '' && self.matches('{}')", pattern())
}

/// What a duration looks like, in words; every message about a malformed duration says
/// "… must be" followed by this.
pub fn description() -> String {
    let units: Vec<String> = UNITS
        .iter()
        .map(|unit| format!("{} {}", unit.letter, unit.name))
        .collect();
    format!(
        "a duration such as 30d, 2w or 1h30m: whole numbers of at most {MAX_DIGITS} digits, \
         each followed by its unit ({}), largest unit first and each unit at most once",
        units.join(", ")
    )
}

static GRAMMAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&pattern()).unwrap_or_else(|e| unreachable!("{e}")));

/// A length of time written in vaultkeeper's duration grammar.
///
/// The grammar is a non-empty sequence of `<digits><unit>` with the units `w` (weeks),
/// `d` (days), `h` (hours), `m` (minutes) and `s` (seconds): `90s`, `15m`, `1h30m`, `36h`,
/// `14d`, `2w`. Units must come largest first and each at most once (`1h30m`, never
/// `30m1h` or `1h1h`): a reader then never has to add a duration up, and every value
/// vaultkeeper accepts is also a valid Prometheus duration. Each number has at most
/// [`MAX_DIGITS`] digits. Signs, fractions, spaces and upper-case units are refused.
///
/// [`Display`](fmt::Display) writes the canonical form: the same length with as few
/// numbers as possible, largest unit first (`90m` is written `1h30m`, `336h` is `2w`,
/// zero is `0s`). The canonical form always parses back to the same duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    /// Never negative, never more than the grammar can write.
    seconds: i64,
}

impl Duration {
    /// The length in seconds (never negative).
    pub fn as_seconds(self) -> i64 {
        self.seconds
    }
}

/// A text that is not a [`Duration`]. Its message quotes the text (shortened when long)
/// and says what a duration looks like.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} must be {}", description())]
pub struct InvalidDuration {
    /// The refused text, at most [`MAX_LENGTH`] characters of it.
    text: String,
}

impl InvalidDuration {
    fn of(text: &str) -> Self {
        let mut shown: String = text.chars().take(MAX_LENGTH).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        Self { text: shown }
    }
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration::of(text);
        if text.is_empty() {
            return Err(invalid());
        }
        let numbers = GRAMMAR.captures(text).ok_or_else(invalid)?;
        let mut seconds = 0_i64;
        for (index, unit) in UNITS.iter().enumerate() {
            let Some(number) = numbers.get(index + 1) else {
                continue;
            };
            let count: i64 = number.as_str().parse().map_err(|_| invalid())?;
            seconds = count
                .checked_mul(unit.seconds)
                .and_then(|s| s.checked_add(seconds))
                .ok_or_else(invalid)?;
        }
        Ok(Self { seconds })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0s");
        }
        // Largest unit first, each number capped at what the grammar allows: for all but
        // the absurdly long (beyond 999999999 weeks) this is plain carrying, and the cap
        // keeps even those parseable.
        let mut rest = self.seconds;
        for unit in UNITS {
            let count = (rest / unit.seconds).min(MAX_COUNT);
            if count > 0 {
                write!(f, "{count}{}", unit.letter)?;
                rest -= count * unit.seconds;
            }
        }
        Ok(())
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        std::time::Duration::from_secs(duration.seconds.unsigned_abs())
    }
}

impl From<Duration> for jiff::SignedDuration {
    fn from(duration: Duration) -> Self {
        jiff::SignedDuration::from_secs(duration.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> Option<i64> {
        text.parse::<Duration>().ok().map(Duration::as_seconds)
    }

    #[test]
    fn every_unit_and_their_combinations_parse() {
        assert_eq!(seconds("90s"), Some(90));
        assert_eq!(seconds("15m"), Some(900));
        assert_eq!(seconds("1h30m"), Some(5_400));
        assert_eq!(seconds("36h"), Some(36 * 3_600));
        assert_eq!(seconds("14d"), Some(14 * 86_400));
        assert_eq!(seconds("2w"), Some(14 * 86_400));
        assert_eq!(seconds("1w2d3h4m5s"), Some(788_645));
        assert_eq!(seconds("0s"), Some(0));
        assert_eq!(seconds("007d"), Some(7 * 86_400));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "",
            "1x",
            "h",
            "-1d",
            "+1d",
            "30",
            "1.5h",
            "30 days",
            " 30d",
            "30d ",
            "1H",
            "30m1h",
            "1h1h",
            "1h30",
            "1000000000s",
            "99999999999999999999w",
        ] {
            assert_eq!(seconds(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_canonical_form_carries_into_larger_units() {
        let canonical = |text: &str| text.parse::<Duration>().map(|d| d.to_string());
        assert_eq!(canonical("90m").as_deref(), Ok("1h30m"));
        assert_eq!(canonical("336h").as_deref(), Ok("2w"));
        assert_eq!(canonical("36h").as_deref(), Ok("1d12h"));
        assert_eq!(canonical("0w0s").as_deref(), Ok("0s"));
        assert_eq!(canonical("30d").as_deref(), Ok("4w2d"));
        let longest = "999999999w999999999d999999999h999999999m999999999s";
        assert_eq!(longest.len(), MAX_LENGTH);
        let written = canonical(longest).unwrap();
        assert_eq!(seconds(&written), seconds(longest), "{written}");
    }

    #[test]
    fn the_message_quotes_the_text_and_describes_the_grammar() {
        let error = "1x".parse::<Duration>().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("\"1x\" must be {}", description())
        );
        assert!(error.to_string().contains("such as 30d, 2w or 1h30m"));
        let long = "9".repeat(500);
        let shown = long.parse::<Duration>().unwrap_err().to_string();
        assert!(
            shown.len() < 2 * MAX_LENGTH + description().len(),
            "{shown}"
        );
    }

    #[test]
    fn conversions_keep_the_seconds() {
        let duration: Duration = "1h30m".parse().unwrap();
        assert_eq!(
            std::time::Duration::from(duration),
            std::time::Duration::from_secs(5_400)
        );
        assert_eq!(
            jiff::SignedDuration::from(duration),
            jiff::SignedDuration::from_secs(5_400)
        );
    }
}
