//! Cutting text to a size in bytes without splitting a character.

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
}
