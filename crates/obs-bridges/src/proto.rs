//! Just enough protocol buffers (proto3 wire format) to write and read the bridge formats.
//!
//! Four wire types are used: varint (0), 64-bit (1), length-delimited (2) and 32-bit (5).
//! Writing a nested message reserves one length byte and moves the body only when it turns out
//! longer than 127 bytes, so encoding allocates nothing once the buffer has grown.

/// Appends protobuf fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

impl Enc {
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }

    fn key(&mut self, field: u32, wire: u32) {
        put_varint(&mut self.buf, u64::from(field << 3 | wire));
    }

    /// A varint field (int32/int64/uint64/bool/enum). Negative int64 values take ten bytes.
    pub(crate) fn varint(&mut self, field: u32, v: u64) {
        self.key(field, VARINT);
        put_varint(&mut self.buf, v);
    }

    /// A `double` field.
    pub(crate) fn double(&mut self, field: u32, v: f64) {
        self.key(field, I64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `float` field.
    #[cfg(feature = "tensorboard")]
    pub(crate) fn float(&mut self, field: u32, v: f32) {
        self.key(field, I32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `string`/`bytes` field made of several parts written back to back (no concatenation).
    pub(crate) fn str_parts(&mut self, field: u32, parts: &[&str]) {
        self.key(field, LEN);
        put_varint(&mut self.buf, parts.iter().map(|p| p.len() as u64).sum());
        for p in parts {
            self.buf.extend_from_slice(p.as_bytes());
        }
    }

    /// A `string`/`bytes` field.
    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A packed `repeated double` field.
    #[cfg(feature = "tensorboard")]
    pub(crate) fn packed_doubles(&mut self, field: u32, vs: impl ExactSizeIterator<Item = f64>) {
        self.key(field, LEN);
        put_varint(&mut self.buf, vs.len() as u64 * 8);
        for v in vs {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A length-delimited field whose body `body` writes (a nested message, or raw bytes such
    /// as JSON text written straight into the buffer).
    pub(crate) fn nested(&mut self, field: u32, body: impl FnOnce(&mut Enc)) {
        self.key(field, LEN);
        let at = self.buf.len();
        self.buf.push(0);
        body(self);
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            put_varint(&mut prefix, len as u64);
            self.buf.splice(at..=at, prefix);
        }
    }
}

/// One decoded field value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32(u32),
}

impl<'a> Wire<'a> {
    pub(crate) fn as_u64(self) -> Option<u64> {
        match self {
            Wire::Varint(v) => Some(v),
            _ => None,
        }
    }
    pub(crate) fn as_f64(self) -> Option<f64> {
        match self {
            Wire::I64(v) => Some(f64::from_bits(v)),
            _ => None,
        }
    }
    #[cfg(feature = "tensorboard")]
    pub(crate) fn as_f32(self) -> Option<f32> {
        match self {
            Wire::I32(v) => Some(f32::from_bits(v)),
            _ => None,
        }
    }
    pub(crate) fn as_bytes(self) -> Option<&'a [u8]> {
        match self {
            Wire::Len(b) => Some(b),
            _ => None,
        }
    }
    pub(crate) fn as_str(self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Iterates over the fields of one message, in wire order.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    data: &'a [u8],
    failed: bool,
}

pub(crate) fn fields(data: &[u8]) -> Fields<'_> {
    Fields { data, failed: false }
}

fn get_varint(data: &mut &[u8]) -> Result<u64, Malformed> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first().ok_or(Malformed)?;
        *data = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Malformed)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    if data.len() < n {
        return Err(Malformed);
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<(u32, Wire<'a>), Malformed> {
        let key = get_varint(&mut self.data)?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        let value = match key & 7 {
            0 => Wire::Varint(get_varint(&mut self.data)?),
            1 => Wire::I64(u64::from_le_bytes(
                take(&mut self.data, 8)?.try_into().map_err(|_| Malformed)?,
            )),
            2 => {
                let n = usize::try_from(get_varint(&mut self.data)?).map_err(|_| Malformed)?;
                Wire::Len(take(&mut self.data, n)?)
            }
            5 => Wire::I32(u32::from_le_bytes(
                take(&mut self.data, 4)?.try_into().map_err(|_| Malformed)?,
            )),
            _ => return Err(Malformed),
        };
        if field == 0 {
            return Err(Malformed);
        }
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Decodes a packed `repeated double`.
#[cfg(feature = "tensorboard")]
pub(crate) fn packed_doubles(b: &[u8]) -> Result<Vec<f64>, Malformed> {
    if !b.len().is_multiple_of(8) {
        return Err(Malformed);
    }
    Ok(b.chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut e = Enc::default();
            e.varint(3, v);
            let got: Vec<_> = fields(&e.buf).collect::<Result<_, _>>().unwrap();
            assert_eq!(got, [(3, Wire::Varint(v))]);
        }
        // A known encoding: field 1, value 150 is 08 96 01.
        let mut e = Enc::default();
        e.varint(1, 150);
        assert_eq!(e.buf, [0x08, 0x96, 0x01]);
    }

    #[test]
    fn nested_messages_of_any_length_decode() {
        for n in [0usize, 1, 126, 127, 128, 200, 16_383, 16_384, 70_000] {
            let mut e = Enc::default();
            let body = vec![b'x'; n];
            e.nested(5, |e| e.bytes(1, &body));
            e.double(2, 1.5);
            let outer: Vec<_> = fields(&e.buf).collect::<Result<_, _>>().unwrap();
            assert_eq!(outer.len(), 2, "{n}");
            let inner: Vec<_> =
                fields(outer[0].1.as_bytes().unwrap()).collect::<Result<_, _>>().unwrap();
            assert_eq!(inner, [(1, Wire::Len(&body[..]))]);
            assert_eq!(outer[1], (2, Wire::I64(1.5f64.to_bits())));
        }
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_not_a_panic() {
        let mut e = Enc::default();
        e.str_parts(1, &["metrics/", "loss"]);
        e.double(2, 3.0);
        for cut in 0..e.buf.len() {
            let r: Result<Vec<_>, _> = fields(&e.buf[..cut]).collect();
            if cut != 0 && cut != 14 {
                assert!(r.is_err(), "cut at {cut}");
            }
        }
        for bad in [&[0xffu8; 11][..], &[0x07], &[0x00, 0x00], &[0x0a, 0x05, 1]] {
            assert!(fields(bad).collect::<Result<Vec<_>, _>>().is_err(), "{bad:?}");
        }
    }
}
