//! The CRD and the Rust parser agree on what a duration is: every generated text is put
//! to the generated CRD (its `maxLength` and its CEL rule, run by a real CEL interpreter)
//! and to [`Duration::from_str`], and both must accept it or both refuse it, refusing
//! with the same description of the grammar.

use std::str::FromStr;
use std::sync::LazyLock;

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use proptest::prelude::*;
use serde_json::json;
use vaultkeeper_api::duration::{self, MAX_DIGITS, UNITS};
use vaultkeeper_api::{Duration, crd, rules};

/// A duration field of the generated CRD: its schema, compiled once.
struct CrdField {
    rule: rules::SpecRule,
    max_length: usize,
    compiled: CompiledSchema,
}

impl CrdField {
    fn new(path: &[&str], rule: rules::SpecRule) -> Self {
        let crd = serde_json::to_value(crd()).expect("the CRD serializes");
        let mut schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        for property in path {
            schema = &schema["properties"][property];
        }
        assert_eq!(schema["type"], "string", "{path:?}");
        let max_length = schema["maxLength"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .expect("a duration field declares maxLength");
        Self {
            rule,
            max_length,
            compiled: compile_schema(schema),
        }
    }

    /// What the API server says: `None` when it accepts the text, else the messages.
    fn refusal(&self, text: &str) -> Option<Vec<String>> {
        // The API server checks `maxLength` (in characters) before any rule.
        if text.chars().count() > self.max_length {
            return Some(vec![format!("longer than {}", self.max_length)]);
        }
        match Validator::new().validate_compiled(&self.compiled, &json!(text), None) {
            Ok(()) => None,
            Err(errors) => Some(errors.into_vec().into_iter().map(|e| e.message).collect()),
        }
    }
}

static MAX_AGE: LazyLock<CrdField> = LazyLock::new(|| {
    CrdField::new(
        &["spec", "backup", "retention", "maxAge"],
        rules::retention_max_age(),
    )
});
static TOKEN_PERIOD: LazyLock<CrdField> = LazyLock::new(|| {
    CrdField::new(
        &["spec", "monitoring", "tokenPeriod"],
        rules::token_period(),
    )
});

/// Both layers decide the same way; a refusal carries the same description in both.
fn assert_layers_agree(text: &str) -> Result<(), TestCaseError> {
    let parsed = Duration::from_str(text);
    let grammar = format!("must be {}", duration::description());
    for field in [&*MAX_AGE, &*TOKEN_PERIOD] {
        let refusal = field.refusal(text);
        prop_assert_eq!(
            refusal.is_none(),
            parsed.is_ok(),
            "{:?}: the CRD field {} says {:?}, the parser says {:?}",
            text,
            field.rule.field,
            refusal,
            parsed
        );
        if let Some(messages) = refusal
            && text.chars().count() <= field.max_length
        {
            prop_assert_eq!(messages, vec![field.rule.message.clone()]);
            prop_assert!(field.rule.message.ends_with(&grammar));
        }
    }
    match parsed {
        Ok(duration) => {
            // The canonical form is itself a duration of the same length.
            let canonical = duration.to_string();
            prop_assert_eq!(Duration::from_str(&canonical), Ok(duration));
            prop_assert!(MAX_AGE.refusal(&canonical).is_none(), "{}", canonical);
        }
        Err(error) => {
            prop_assert!(error.to_string().ends_with(&grammar), "{}", error);
        }
    }
    Ok(())
}

/// Texts written in the grammar: some units, largest first, each with 1 to 9 digits.
fn grammatical() -> impl Strategy<Value = String> {
    let number =
        proptest::string::string_regex(&format!("[0-9]{{1,{MAX_DIGITS}}}")).expect("number regex");
    proptest::collection::vec(proptest::option::of(number), UNITS.len())
        .prop_map(|numbers| {
            numbers
                .into_iter()
                .zip(UNITS)
                .filter_map(|(number, unit)| number.map(|n| format!("{n}{}", unit.letter)))
                .collect::<String>()
        })
        .prop_filter("not empty", |text| !text.is_empty())
}

/// Texts near the grammar: numbers that may be too long, units in any order, repeated,
/// upper-case or unknown, signs, dots and spaces.
fn nearly_grammatical() -> impl Strategy<Value = String> {
    let piece = (
        proptest::string::string_regex("[-+ ]?[0-9]{0,11}(\\.[0-9])?").expect("number regex"),
        proptest::sample::select(vec!["w", "d", "h", "m", "s", "W", "H", "x", "ms", "", " "]),
    )
        .prop_map(|(number, unit)| format!("{number}{unit}"));
    proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn grammatical_durations_pass_both_layers(text in grammatical()) {
        prop_assert!(Duration::from_str(&text).is_ok(), "{}", text);
        assert_layers_agree(&text)?;
    }

    #[test]
    fn nearly_grammatical_texts_get_the_same_answer_from_both_layers(
        text in nearly_grammatical()
    ) {
        assert_layers_agree(&text)?;
    }

    #[test]
    fn arbitrary_texts_get_the_same_answer_from_both_layers(text in any::<String>()) {
        assert_layers_agree(&text)?;
    }

    #[test]
    fn texts_of_duration_characters_get_the_same_answer_from_both_layers(
        text in "[0-9wdhms]{0,60}"
    ) {
        assert_layers_agree(&text)?;
    }
}

#[test]
fn the_documented_examples_and_the_refused_ones() {
    for good in [
        "90s", "15m", "1h30m", "14d", "2w", "36h", "336h", "30d", "0s",
    ] {
        assert!(MAX_AGE.refusal(good).is_none(), "{good}");
        assert!(Duration::from_str(good).is_ok(), "{good}");
    }
    for bad in [
        "1x",
        "h",
        "-1d",
        "",
        "30m1h",
        "1h1h",
        "1000000000s",
        "1.5h",
        "2 w",
    ] {
        assert!(MAX_AGE.refusal(bad).is_some(), "{bad:?}");
        assert!(Duration::from_str(bad).is_err(), "{bad:?}");
        assert_layers_agree(bad).expect("the layers agree");
    }
    assert!(
        MAX_AGE.rule.message.starts_with(
            "spec.backup.retention.maxAge must be a duration such as 30d, 2w or 1h30m"
        ),
        "{}",
        MAX_AGE.rule.message
    );
}

#[test]
fn the_longest_duration_fits_the_declared_max_length() {
    let longest: String = UNITS
        .iter()
        .map(|unit| format!("{}{}", "9".repeat(MAX_DIGITS), unit.letter))
        .collect();
    assert_eq!(longest.len(), MAX_AGE.max_length);
    assert_eq!(longest.len(), TOKEN_PERIOD.max_length);
    assert_layers_agree(&longest).expect("the layers agree");
    assert!(MAX_AGE.refusal(&longest).is_none());
}

#[test]
fn the_rule_stays_within_the_api_server_cost_budget() {
    let crd = serde_json::to_value(crd()).expect("the CRD serializes");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["backup"]["properties"]["retention"]["properties"]["maxAge"];
    let warnings =
        kube::core::cel::estimate_rule_cost(&duration::cel_rule(), &compile_schema(schema));
    assert!(warnings.is_empty(), "{warnings:?}");
}
