//! The VideoCore message log: what `vcdbg log msg` (or `vclog --msg`) prints.
//!
//! The real firmware keeps a circular buffer of short text messages in VideoCore RAM.
//! Each entry carries the milliseconds since VideoCore boot, a 16-bit sequence number
//! and the text. The host tools print one line per entry as `%06u.%03u: %s` (seconds
//! since boot zero-padded to six digits, a dot, three digits of milliseconds,
//! colon-space, text), for example `025819.942: *** No KHAN handle found for pid 24`.
//!
//! This module is the software VideoCore's equivalent: a bounded ring of
//! [`LogEntry`]s with millisecond timestamps measured from the *emulated* boot (the
//! moment the [`VcLog`] was created, or the [`Instant`] given to
//! [`VcLog::with_boot`]). It does not emulate the in-memory layout of the firmware ring
//! or `/dev/vc-mem`; it only offers the same text rendering ([`VcLog::render`]).
//!
//! # Sharing
//!
//! [`VcLog`] is a cheap handle: it holds an `Arc<Mutex<…>>`, so `clone()` gives another
//! handle to the *same* ring, and it is `Send + Sync`. Every service engine takes a clone.
//!
//! # Bounds
//!
//! The ring keeps at most [`MAX_ENTRIES`] entries and [`MAX_TEXT_BYTES`] bytes of text;
//! the oldest entries are dropped first. A single entry's text is cut to
//! [`MAX_ENTRY_BYTES`] bytes (at a character boundary), and line breaks inside a message
//! are replaced by spaces so that each entry renders as exactly one line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Maximum number of entries kept in the ring.
pub const MAX_ENTRIES: usize = 2048;
/// Maximum total bytes of message text kept in the ring.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Maximum bytes of text in one entry; longer messages are truncated.
pub const MAX_ENTRY_BYTES: usize = 512;

/// One message of the VideoCore log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Milliseconds since the emulated VideoCore boot.
    pub ms: u64,
    /// Sequence number, wrapping at 2¹⁶ (the firmware's `seq_num` is a `u16`).
    pub seq: u16,
    /// Message text, a single line.
    pub text: String,
}

impl LogEntry {
    /// Renders the entry as `vcdbg log msg` does: `SSSSSS.mmm: text`.
    pub fn render(&self) -> String {
        format!("{:06}.{:03}: {}", self.ms / 1000, self.ms % 1000, self.text)
    }
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<LogEntry>,
    text_bytes: usize,
    next_seq: u16,
}

#[derive(Debug)]
struct Inner {
    boot: Instant,
    ring: Mutex<Ring>,
}

/// A handle to the shared VideoCore message log (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct VcLog {
    inner: Arc<Inner>,
}

impl Default for VcLog {
    fn default() -> Self {
        Self::new()
    }
}

impl VcLog {
    /// Creates an empty log whose emulated boot is now.
    pub fn new() -> Self {
        Self::with_boot(Instant::now())
    }

    /// Creates an empty log whose emulated boot happened at `boot`.
    pub fn with_boot(boot: Instant) -> Self {
        Self {
            inner: Arc::new(Inner {
                boot,
                ring: Mutex::new(Ring {
                    entries: VecDeque::new(),
                    text_bytes: 0,
                    next_seq: 0,
                }),
            }),
        }
    }

    /// The instant of the emulated VideoCore boot.
    pub fn boot(&self) -> Instant {
        self.inner.boot
    }

    /// Milliseconds elapsed since the emulated boot.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.inner.boot.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent in a way
        // that matters for a diagnostic log, so recover from poisoning.
        self.inner.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a message stamped with the current uptime. Returns its sequence number.
    pub fn log(&self, text: impl Into<String>) -> u16 {
        let ms = self.uptime_ms();
        self.log_at(ms, text)
    }

    /// Appends a message with an explicit timestamp (milliseconds since boot).
    /// Returns its sequence number.
    pub fn log_at(&self, ms: u64, text: impl Into<String>) -> u16 {
        let text = sanitize(text.into());
        tracing::debug!(target: "vclog", "{}", text);
        let mut ring = self.ring();
        let seq = ring.next_seq;
        ring.next_seq = seq.wrapping_add(1);
        ring.text_bytes += text.len();
        ring.entries.push_back(LogEntry { ms, seq, text });
        while ring.entries.len() > MAX_ENTRIES || ring.text_bytes > MAX_TEXT_BYTES {
            match ring.entries.pop_front() {
                Some(old) => ring.text_bytes -= old.text.len(),
                None => break,
            }
        }
        seq
    }

    /// A snapshot of all entries, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.ring().entries.iter().cloned().collect()
    }

    /// Number of entries currently held.
    pub fn len(&self) -> usize {
        self.ring().entries.len()
    }

    /// True if the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.ring().entries.is_empty()
    }

    /// Sequence number of the newest entry, if any.
    pub fn last_seq(&self) -> Option<u16> {
        self.ring().entries.back().map(|e| e.seq)
    }

    /// Renders every entry, one line each (each line ends with `\n`).
    pub fn render(&self) -> String {
        render_lines(self.ring().entries.iter())
    }

    /// Renders the entries logged after the entry with sequence number `seq`.
    ///
    /// Sequence numbers wrap; "after" is decided by wrapping distance, which is
    /// unambiguous because the ring holds far fewer than 2¹⁵ entries.
    pub fn render_since(&self, seq: u16) -> String {
        let ring = self.ring();
        render_lines(ring.entries.iter().filter(|e| seq_after(e.seq, seq)))
    }
}

/// True if `a` comes after `b` in wrapping 16-bit sequence order.
fn seq_after(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

fn render_lines<'a>(entries: impl Iterator<Item = &'a LogEntry>) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&e.render());
        out.push('\n');
    }
    out
}

/// Makes a message a single line of bounded length.
fn sanitize(text: String) -> String {
    let trimmed = text.trim_end_matches(['\n', '\r']);
    let mut out: String = trimmed
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if out.len() > MAX_ENTRY_BYTES {
        let mut cut = MAX_ENTRY_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_vcdbg_format() {
        let log = VcLog::new();
        log.log_at(25_819_942, "*** No KHAN handle found for pid 24");
        log.log_at(4_397_400, "brfs: File read: /mfs/sd/config.txt");
        log.log_at(7, "early");
        assert_eq!(
            log.render(),
            "025819.942: *** No KHAN handle found for pid 24\n\
             004397.400: brfs: File read: /mfs/sd/config.txt\n\
             000000.007: early\n"
        );
    }

    #[test]
    fn entry_render_large_uptime() {
        let e = LogEntry {
            ms: 1_234_567_890_123,
            seq: 0,
            text: "x".into(),
        };
        assert_eq!(e.render(), "1234567890.123: x");
    }

    #[test]
    fn seq_numbers_increase_and_wrap() {
        let log = VcLog::new();
        assert_eq!(log.last_seq(), None);
        for i in 0..70_000u32 {
            let s = log.log_at(u64::from(i), "m");
            assert_eq!(s, (i & 0xffff) as u16);
        }
        let entries = log.entries();
        assert_eq!(entries.len(), MAX_ENTRIES);
        for w in entries.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        }
        assert_eq!(log.last_seq(), Some((69_999u32 & 0xffff) as u16));
    }

    #[test]
    fn ring_bounded_by_entries() {
        let log = VcLog::new();
        for i in 0..(MAX_ENTRIES + 10) {
            log.log_at(i as u64, format!("msg {i}"));
        }
        let e = log.entries();
        assert_eq!(e.len(), MAX_ENTRIES);
        assert_eq!(e[0].text, "msg 10");
        assert_eq!(e.last().map(|e| e.text.as_str()), Some("msg 2057"));
    }

    #[test]
    fn ring_bounded_by_text() {
        let log = VcLog::new();
        let big = "y".repeat(MAX_ENTRY_BYTES);
        for i in 0..1000u64 {
            log.log_at(i, big.clone());
        }
        let e = log.entries();
        let bytes: usize = e.iter().map(|e| e.text.len()).sum();
        assert!(bytes <= MAX_TEXT_BYTES);
        assert_eq!(e.len(), MAX_TEXT_BYTES / MAX_ENTRY_BYTES);
        assert_eq!(e.last().map(|e| e.ms), Some(999));
    }

    #[test]
    fn long_and_multiline_text_sanitized() {
        let log = VcLog::new();
        log.log_at(0, "a\nb\r\n");
        log.log_at(0, "é".repeat(MAX_ENTRY_BYTES));
        let e = log.entries();
        assert_eq!(e[0].text, "a b");
        assert!(e[1].text.len() <= MAX_ENTRY_BYTES);
        assert!(e[1].text.chars().all(|c| c == 'é'));
        assert_eq!(log.render().lines().count(), 2);
    }

    #[test]
    fn render_since_wrapping() {
        let log = VcLog::new();
        let first = log.log_at(1000, "one");
        log.log_at(2000, "two");
        log.log_at(3000, "three");
        assert_eq!(
            log.render_since(first),
            "000002.000: two\n000003.000: three\n"
        );
        assert_eq!(log.render_since(first.wrapping_add(2)), "");
        assert!(seq_after(0, 0xffff));
        assert!(!seq_after(0xffff, 0));
    }

    #[test]
    fn clones_share_ring_and_timestamps_from_boot() {
        let boot = Instant::now()
            .checked_sub(Duration::from_secs(5))
            .unwrap_or_else(Instant::now);
        let log = VcLog::with_boot(boot);
        let other = log.clone();
        other.log("hello");
        assert_eq!(log.len(), 1);
        let e = &log.entries()[0];
        assert!(e.ms >= 4_000, "{}", e.ms);
        assert!(!log.is_empty());
        let h = std::thread::spawn(move || other.log("from thread"));
        h.join().ok();
        assert_eq!(log.len(), 2);
    }
}
