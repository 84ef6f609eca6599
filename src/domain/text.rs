//! What text from outside may contain, checked once at the boundary and the same way whatever
//! stores it.

/// FHIR strings allow no control characters but tab, line feed and carriage return. NUL,
/// BEL and ESC are refused: PostgreSQL cannot store NUL, XML 1.0 cannot carry BEL or ESC, and
/// none of them belongs in a name, an identifier or a search.
pub fn forbidden_character(s: &str) -> Option<char> {
    s.chars()
        .find(|c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

/// Text from outside as a message or a log line may show it: control characters escaped and
/// at most `max` characters, so crafted input cannot forge log lines or bloat a response.
pub fn shown(raw: &str, max: usize) -> String {
    let mut out: String = raw.chars().take(max).flat_map(char::escape_debug).collect();
    if raw.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// FHIR resource ids: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_resource_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters() {
        assert_eq!(forbidden_character("Smith"), None);
        assert_eq!(forbidden_character("line\nbreak\tand\r"), None);
        assert_eq!(forbidden_character("x\u{0}"), Some('\u{0}'));
        assert_eq!(forbidden_character("bell\u{7}"), Some('\u{7}'));
        assert_eq!(forbidden_character("esc\u{1b}[31m"), Some('\u{1b}'));
        assert_eq!(forbidden_character("del\u{7f}"), Some('\u{7f}'));
        assert_eq!(forbidden_character("Zoë Ó'Brien 名"), None);
    }

    #[test]
    fn shown_text_is_escaped_and_bounded() {
        assert_eq!(shown("RS256", 32), "RS256");
        assert_eq!(shown("a\u{0}b", 32), "a\\0b", "NUL is escaped, not passed on");
        assert_eq!(shown("abcdef", 3), "abc...");
    }

    #[test]
    fn ids() {
        assert!(is_resource_id("patient-jane-smith"));
        assert!(is_resource_id("6f1c7f0e-3c2b-4d8e-9a51-0c3b2f5d7e11"));
        assert!(!is_resource_id(""));
        assert!(!is_resource_id("x\u{0}"));
        assert!(!is_resource_id("a/b"));
        assert!(!is_resource_id(&"a".repeat(65)));
    }
}
