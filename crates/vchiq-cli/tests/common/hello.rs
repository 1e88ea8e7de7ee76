//! Reading what `vchiq hello-triangle --progress` prints: `key: value` lines
//! (`pid`, `client_id`, `pid_source`), a `frame K: ...` line per swap and the summary
//! `frames: N ... khan posts: M`.

/// The value of the first `KEY: value` line.
pub fn value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
}

/// How many `frame K:` lines (completed swaps) there are.
pub fn frames(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("frame ")).count()
}

/// The KHAN posts the summary line counts.
pub fn khan_posts(lines: &[String]) -> Option<usize> {
    lines
        .iter()
        .find(|l| l.starts_with("frames: "))
        .and_then(|l| l.rsplit("khan posts: ").next()?.trim().parse().ok())
}
