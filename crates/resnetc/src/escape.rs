//! Text from files (node and value names, version strings, paths) made safe to print: control
//! characters are shown as `\u{1b}` instead of reaching the terminal, and long text is cut.

use std::fmt::Write;
use std::path::Path;

/// The longest name printed whole; longer ones keep their start and say how long they were.
pub const MAX_NAME_CHARS: usize = 200;

/// `s` with control characters escaped and cut to [`MAX_NAME_CHARS`].
pub fn name(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_NAME_CHARS + 32));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_NAME_CHARS {
            let _ = write!(out, "… ({} characters)", s.chars().count());
            break;
        }
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A path for a message, escaped like [`name`].
pub fn path(p: &Path) -> String {
    name(&p.to_string_lossy())
}

/// Multi-line text (a dump, a report) with every control character but the newline escaped.
pub fn text(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_long_names_cut() {
        assert_eq!(super::name("a\u{1b}[31mb\r\0"), "a\\u{1b}[31mb\\u{d}\\u{0}");
        let long = "x".repeat(5000);
        let cut = super::name(&long);
        assert!(
            cut.len() < 300 && cut.ends_with("(5000 characters)"),
            "{cut}"
        );
    }
}
