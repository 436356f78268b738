//! Lowercase hex encoding of digests.

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_every_nibble() {
        assert_eq!(super::hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
        assert_eq!(super::hex(&[]), "");
    }
}
