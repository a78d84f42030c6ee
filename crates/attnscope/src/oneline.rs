//! Everything the tool prints about a failure fits on one line: control
//! characters from file names or model files are escaped, an error chain is
//! joined without repeating itself, and clap's multi-line errors are cut to
//! their first line.

/// `s` with every control character (newline, carriage return, escape,
/// NUL, …) and the Unicode line/paragraph separators written as Rust
/// escapes (`\n`, `\u{1b}`), so that nothing from a file can start a new
/// line or drive the terminal.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The messages of an error chain (outermost first) joined with ": ", each
/// escaped. A message already contained in what came before is dropped, and
/// a leading `X: ` is dropped when the line so far already ends with `X`
/// ("cannot load model m.gguf" + "m.gguf: GGUF file is invalid" reads
/// "cannot load model m.gguf: GGUF file is invalid").
pub fn chain(parts: impl IntoIterator<Item = String>) -> String {
    let mut line = String::new();
    for part in parts {
        let mut part = escape(&part);
        if line.contains(part.as_str()) {
            continue;
        }
        if !line.is_empty() {
            // The longest `X: ` prefix of `part` with `line` ending in X.
            let cut = part.match_indices(": ").map(|(i, _)| i).filter(|&i| i >= 3 && line.ends_with(&part[..i])).max();
            if let Some(i) = cut {
                part = part[i + 2..].to_string();
            }
            line.push_str(": ");
        }
        line.push_str(&part);
    }
    line
}

/// clap's rendered error (`error: …`, a blank line, a tip, the usage, a
/// pointer to --help) as one line: its first line, with the hint to --help.
pub fn clap_error(rendered: &str) -> String {
    let first = rendered.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = if first.is_empty() { "invalid arguments" } else { first };
    format!("{} (see attnscope --help)", escape(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("a\nb\x1b[31mc\rd\0"), "a\\nb\\u{1b}[31mc\\rd\\u{0}");
        assert_eq!(escape("plain é ✓"), "plain é ✓");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn chain_drops_repeats() {
        let j = |v: &[&str]| chain(v.iter().map(|s| s.to_string()));
        assert_eq!(
            j(&["cannot load model m.gguf", "m.gguf: GGUF file is invalid: x"]),
            "cannot load model m.gguf: GGUF file is invalid: x"
        );
        assert_eq!(j(&["cannot read a", "No such file"]), "cannot read a: No such file");
        assert_eq!(j(&["outer: inner", "inner"]), "outer: inner");
        assert_eq!(j(&["bad\nname", "x"]), "bad\\nname: x");
    }

    #[test]
    fn clap_error_is_one_line() {
        let r = "error: unexpected argument '--foo' found\n\n  tip: to pass '--foo' as a value, use '-- --foo'\n\nUsage: attnscope analyze [OPTIONS]\n\nFor more information, try '--help'.\n";
        let l = clap_error(r);
        assert_eq!(l, "unexpected argument '--foo' found (see attnscope --help)");
        assert!(!l.contains('\n'));
    }
}
