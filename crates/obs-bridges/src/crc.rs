//! The two checksums the bridge formats use, table-driven (slicing by 8) with no dependency.
//!
//! TensorBoard frames records with a *masked* CRC-32C (Castagnoli); W&B's `.wandb` log uses a
//! plain CRC-32 (IEEE, as zlib). Both are reflected CRCs that differ only in the polynomial.

/// Eight 256-entry tables for slicing-by-8 over a reflected polynomial.
const fn tables(poly: u32) -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

/// Continues a reflected CRC (pre- and post-inverted by the callers) over `data`.
fn update(table: &[[u32; 256]; 8], mut crc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = table[7][(lo & 0xff) as usize]
            ^ table[6][((lo >> 8) & 0xff) as usize]
            ^ table[5][((lo >> 16) & 0xff) as usize]
            ^ table[4][(lo >> 24) as usize]
            ^ table[3][c[4] as usize]
            ^ table[2][c[5] as usize]
            ^ table[1][c[6] as usize]
            ^ table[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ table[0][((crc ^ u32::from(b)) & 0xff) as usize];
    }
    crc
}

#[cfg(feature = "tensorboard")]
static CASTAGNOLI: [[u32; 256]; 8] = tables(0x82F6_3B78);

#[cfg(feature = "wandb")]
static IEEE: [[u32; 256]; 8] = tables(0xEDB8_8320);

/// CRC-32C (Castagnoli) of `data`.
#[cfg(feature = "tensorboard")]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    !update(&CASTAGNOLI, !0, data)
}

/// The masked CRC-32C that TFRecord framing stores: rotate right by 15, add a constant.
#[cfg(feature = "tensorboard")]
pub(crate) fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`) of the concatenation `a ‖ b`.
#[cfg(feature = "wandb")]
pub(crate) fn crc32_ieee2(a: &[u8], b: &[u8]) -> u32 {
    !update(&IEEE, update(&IEEE, !0, a), b)
}

#[cfg(all(test, any(feature = "tensorboard", feature = "wandb")))]
mod tests {
    use super::*;

    /// The standard check inputs: the CRC of the ASCII digits "123456789".
    #[cfg(feature = "tensorboard")]
    #[test]
    fn crc32c_check_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 (iSCSI) B.4 vectors: 32 bytes of zeros, of 0xff, and ascending bytes.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
    }

    #[cfg(feature = "tensorboard")]
    #[test]
    fn masking_matches_the_tfrecord_definition() {
        let crc = crc32c(b"123456789");
        assert_eq!(masked_crc32c(b"123456789"), crc.rotate_right(15).wrapping_add(0xA282_EAD8));
        // The empty string: CRC 0 masks to the delta itself.
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
    }

    #[cfg(feature = "wandb")]
    #[test]
    fn crc32_ieee_check_values() {
        assert_eq!(crc32_ieee2(b"123456789", b""), 0xCBF4_3926);
        assert_eq!(crc32_ieee2(b"1234", b"56789"), 0xCBF4_3926);
        assert_eq!(crc32_ieee2(b"", b""), 0);
        assert_eq!(crc32_ieee2(b"The quick brown fox jumps over the lazy dog", b""), 0x414F_A339);
    }

    /// Slicing-by-8 must agree with the bytewise definition on every length and alignment.
    #[cfg(feature = "tensorboard")]
    #[test]
    fn sliced_and_bytewise_agree() {
        let data: Vec<u8> =
            (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                let part = &data[start..end];
                let mut slow = !0u32;
                for &b in part {
                    slow = (slow >> 8) ^ CASTAGNOLI[0][((slow ^ u32::from(b)) & 0xff) as usize];
                }
                assert_eq!(crc32c(part), !slow, "{start}..{end}");
            }
        }
    }
}
