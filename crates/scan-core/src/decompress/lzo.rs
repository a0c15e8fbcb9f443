//! LZO1X block decoding (the `lzo1x_decompress_safe` stream squashfs and UBIFS store), written
//! here from the format's description because the only Rust LZO crate is GPL-licensed. Every
//! read is checked against the input, every copy against the output bound and the bytes
//! already produced, so a hostile block fails instead of reading or writing out of range.

/// Why a block could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LzoError {
    #[error("the LZO block ends inside an instruction")]
    Truncated,
    #[error("the LZO block copies from before its start")]
    Distance,
    #[error("the LZO block decodes to more than {0} bytes")]
    TooLarge(usize),
    #[error("the LZO block has bytes after its end marker")]
    Trailing,
}

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let b = *self.bytes.get(self.at).ok_or(LzoError::Truncated)?;
        self.at += 1;
        Ok(usize::from(b))
    }

    fn le16(&mut self) -> Result<usize, LzoError> {
        Ok(self.byte()? | self.byte()? << 8)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], LzoError> {
        let end = self.at.checked_add(n).ok_or(LzoError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(LzoError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    /// A length continued in extra bytes: each zero byte adds 255, the first non-zero one
    /// ends it and is added too, on top of `base`.
    fn long_length(&mut self, base: usize) -> Result<usize, LzoError> {
        let mut length = base;
        loop {
            match self.byte()? {
                0 => length += 255,
                b => return Ok(length + b),
            }
        }
    }
}

/// Appends the decoded `input` to `out`, which may not grow past `max` bytes.
pub(crate) fn lzo1x(input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), LzoError> {
    let base = out.len();
    let limit = base.saturating_add(max);
    let mut input = Input {
        bytes: input,
        at: 0,
    };
    let literals = |input: &mut Input<'_>, out: &mut Vec<u8>, n: usize| {
        if out.len() + n > limit {
            return Err(LzoError::TooLarge(max));
        }
        out.extend_from_slice(input.take(n)?);
        Ok(())
    };
    let copy = |out: &mut Vec<u8>, distance: usize, length: usize| {
        if distance == 0 || distance > out.len() - base {
            return Err(LzoError::Distance);
        }
        if out.len() + length > limit {
            return Err(LzoError::TooLarge(max));
        }
        let from = out.len() - distance;
        // Overlapping copies repeat what they have just written (a run), so byte by byte.
        for i in 0..length {
            out.push(out[from + i]);
        }
        Ok(())
    };
    // How many literals the last instruction copied: 0, 1 to 3, or 4 for a run of 4 or more.
    // It decides what the next instruction below 16 means.
    let mut state = 0usize;
    if let Some(&first) = input.bytes.first()
        && first > 17
    {
        input.at = 1;
        let n = usize::from(first) - 17;
        literals(&mut input, out, n)?;
        state = n.min(4);
    }
    loop {
        let op = input.byte()?;
        let next;
        if op < 16 {
            if state == 0 {
                // A run of literals of 4 or more.
                let n = 3 + if op == 0 { input.long_length(15)? } else { op };
                literals(&mut input, out, n)?;
                state = 4;
                continue;
            }
            let h = input.byte()?;
            let (distance, length) = if state == 4 {
                ((h << 2) + (op >> 2) + 2049, 3)
            } else {
                ((h << 2) + (op >> 2) + 1, 2)
            };
            copy(out, distance, length)?;
            next = op & 3;
        } else if op < 32 {
            let length = 2 + if op & 7 == 0 {
                input.long_length(7)?
            } else {
                op & 7
            };
            let d = input.le16()?;
            let distance = 16384 + ((op & 8) << 11) + (d >> 2);
            if distance == 16384 {
                // The end marker: 0x11 0x00 0x00.
                if input.at != input.bytes.len() {
                    return Err(LzoError::Trailing);
                }
                return Ok(());
            }
            copy(out, distance, length)?;
            next = d & 3;
        } else if op < 64 {
            let length = 2 + if op & 31 == 0 {
                input.long_length(31)?
            } else {
                op & 31
            };
            let d = input.le16()?;
            copy(out, (d >> 2) + 1, length)?;
            next = d & 3;
        } else {
            let h = input.byte()?;
            let distance = (h << 3) + ((op >> 2) & 7) + 1;
            let length = if op < 128 {
                3 + ((op >> 5) & 1)
            } else {
                5 + ((op >> 5) & 3)
            };
            copy(out, distance, length)?;
            next = op & 3;
        }
        literals(&mut input, out, next)?;
        state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_matches_and_the_end_marker_decode() {
        // 4 literals "abcd" (first byte 17 + 4), then a copy of 8 bytes at distance 4
        // (0b1_11_011_00: length 5 + 3, distance 3 + 1, no literals after, high byte 0),
        // then the end marker.
        let block = [21, b'a', b'b', b'c', b'd', 0b1110_1100, 0, 0x11, 0, 0];
        let mut out = Vec::new();
        lzo1x(&block, &mut out, 64).unwrap();
        assert_eq!(out, b"abcdabcdabcd");
    }

    #[test]
    fn hostile_blocks_fail_instead_of_reaching_out_of_range() {
        let mut out = Vec::new();
        // A copy from before the start.
        let block = [21, b'a', b'b', b'c', b'd', 0b1110_1100, 9, 0x11, 0, 0];
        assert!(matches!(
            lzo1x(&block, &mut out, 64),
            Err(LzoError::Distance)
        ));
        // More output than allowed.
        out.clear();
        let block = [21, b'a', b'b', b'c', b'd', 0b1110_1100, 0, 0x11, 0, 0];
        assert!(matches!(
            lzo1x(&block, &mut out, 8),
            Err(LzoError::TooLarge(8))
        ));
        // Cut short, and no end marker.
        out.clear();
        assert!(matches!(
            lzo1x(&block[..6], &mut out, 64),
            Err(LzoError::Truncated)
        ));
        out.clear();
        assert!(matches!(
            lzo1x(&block[..7], &mut out, 64),
            Err(LzoError::Truncated)
        ));
    }
}
