//! Cutting text to a size in bytes without splitting a character, and
//! making outside text storable in PostgreSQL.

use std::borrow::Cow;

/// What replaces U+0000 in outside text on its way to storage.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// `text` with every U+0000 replaced by [`NUL_REPLACEMENT`]: PostgreSQL's
/// `text` and `jsonb` refuse U+0000, so a program's output, a header or an
/// error message holding one could otherwise not be journaled at all.
/// Borrowed when there is none, which is the common case.
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', &NUL_REPLACEMENT.to_string()))
    } else {
        Cow::Borrowed(text)
    }
}

/// The longest prefix of `text` that is at most `max` bytes long.
pub fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The longest suffix of `text` that is at most `max` bytes long.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        let text = "aé€z"; // 1 + 2 + 3 + 1 bytes
        assert_eq!(head(text, 2), "a");
        assert_eq!(head(text, 3), "aé");
        assert_eq!(head(text, 99), text);
        assert_eq!(tail(text, 2), "z");
        assert_eq!(tail(text, 4), "€z");
        assert_eq!(tail(text, 0), "");
    }

    #[test]
    fn storable_text_holds_no_nul() {
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
        assert_eq!(storable("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
    }
}
