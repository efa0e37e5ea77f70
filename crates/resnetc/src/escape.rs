//! Text from files (node and value names, version strings, paths) made safe to print: control
//! characters are shown as `\u{1b}` instead of reaching the terminal, and long text is cut.

use std::fmt::Write;
use std::path::Path;

/// The longest name printed whole; longer ones keep their start and say how long they were.
pub const MAX_NAME_CHARS: usize = 200;

/// The longest error message kept whole (a Conv with 5M strides once made a 15 MB one).
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// An error message as the library keeps it: control characters escaped (every layer's text
/// passes through here, whatever names it quotes) and cut to [`MAX_MESSAGE_CHARS`], saying how
/// long it was.
pub fn message(s: &str) -> String {
    let s = text(s);
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => s,
        Some((cut, _)) => format!(
            "{}… (cut; {} characters in all)",
            &s[..cut],
            s.chars().count()
        ),
    }
}

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
    fn messages_are_escaped_and_cut() {
        assert_eq!(
            super::message("node 'a\u{1b}[2J'\r: bad\nnext"),
            "node 'a\\u{1b}[2J'\\u{d}: bad\nnext"
        );
        let long = super::message(&"y".repeat(5_000_000));
        assert!(
            long.len() < 2100 && long.ends_with("… (cut; 5000000 characters in all)"),
            "{}",
            &long[1900..]
        );
        // Already escaped text is kept as it is.
        let once = super::message("a\u{7}");
        assert_eq!(super::message(&once), once);
    }

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
