//! Durations as users write them: `30d`, `26h`, `1w`, `90min` (humantime).

use std::time::Duration;

use crate::UsageError;

/// Parses a humantime duration such as `30d` or `1w 2d`.
///
/// Fails with a usage error that repeats the text and shows examples.
pub fn parse(text: &str) -> Result<Duration, UsageError> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        UsageError(format!(
            "invalid duration {text:?}: {err}; write it like 30d, 26h, 1w or 90min"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms_parse() {
        assert_eq!(parse("26h").ok(), Some(Duration::from_secs(26 * 3600)));
        assert_eq!(parse("1w").ok(), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("30d").ok(), Some(Duration::from_secs(30 * 86400)));
    }

    #[test]
    fn nonsense_is_a_usage_error_naming_the_text() {
        let err = parse("soon")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("\"soon\""), "{err}");
    }
}
