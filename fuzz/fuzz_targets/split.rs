//! Splits a fuzz input into a sequence of messages, so that targets reach the state machines
//! behind one message: each message is a little-endian `u16` length and that many bytes
//! (cut short at the end of the input), and its first byte's low bit picks a channel where
//! the target has two.

/// The messages of `data`, in order.
pub fn messages(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 256 {
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        data = &data[2..];
        let n = len.min(data.len());
        out.push(&data[..n]);
        data = &data[n..];
    }
    out
}
