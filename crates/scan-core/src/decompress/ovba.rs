//! MS-OVBA decompression (the compression of VBA macro source and the VBA `dir` stream): a
//! signature byte, then chunks of at most 4096 decoded bytes, each either stored or a run of
//! literal bytes and back-references. Decoded one chunk at a time, so memory stays at 8 KiB.

use std::io::{self, Read};

const CHUNK: usize = 4096;

pub(super) struct OvbaReader<R> {
    inner: R,
    started: bool,
    /// The chunk decoded last, and how much of it was handed out.
    out: Vec<u8>,
    served: usize,
    input: Vec<u8>,
}

impl<R: Read> OvbaReader<R> {
    pub(super) fn new(inner: R) -> Self {
        OvbaReader {
            inner,
            started: false,
            out: Vec::with_capacity(CHUNK),
            served: 0,
            input: Vec::with_capacity(CHUNK + 2),
        }
    }

    /// Decodes the next chunk into `out`; false at the end of the container.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let mut header = [0u8; 2];
        match read_full(&mut self.inner, &mut header)? {
            0 => return Ok(false),
            2 => {}
            _ => return Err(invalid("truncated chunk header")),
        }
        let header = u16::from_le_bytes(header);
        if (header >> 12) & 0b111 != 0b011 {
            return Err(invalid("bad chunk signature"));
        }
        let size = usize::from(header & 0x0FFF) + 1;
        self.input.clear();
        (&mut self.inner)
            .take(size as u64)
            .read_to_end(&mut self.input)?;
        self.out.clear();
        self.served = 0;
        if header & 0x8000 == 0 {
            // Stored: the chunk is its bytes (4096 of them when well formed).
            self.out.extend_from_slice(&self.input);
            return Ok(true);
        }
        decode_chunk(&self.input, &mut self.out)?;
        Ok(true)
    }
}

fn decode_chunk(input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let mut at = 0;
    while at < input.len() && out.len() < CHUNK {
        let flags = input[at];
        at += 1;
        for bit in 0..8 {
            if at >= input.len() || out.len() >= CHUNK {
                break;
            }
            if flags & (1 << bit) == 0 {
                out.push(input[at]);
                at += 1;
                continue;
            }
            let Some(token) = input.get(at..at + 2) else {
                return Err(invalid("truncated copy token"));
            };
            at += 2;
            let token = u16::from_le_bytes([token[0], token[1]]);
            // The split between offset and length bits grows with the bytes decoded so far.
            let decoded = out.len();
            let bits = (usize::BITS - (decoded.max(1) - 1).leading_zeros()).max(4);
            let length_mask = 0xFFFFu16 >> bits;
            let length = usize::from(token & length_mask) + 3;
            let offset = usize::from((token & !length_mask) >> (16 - bits)) + 1;
            if offset > decoded {
                return Err(invalid("copy token points before the chunk"));
            }
            let from = decoded - offset;
            for i in 0..length.min(CHUNK - decoded) {
                let byte = out[from + i];
                out.push(byte);
            }
        }
    }
    Ok(())
}

impl<R: Read> Read for OvbaReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            let mut signature = [0u8; 1];
            if read_full(&mut self.inner, &mut signature)? == 0 || signature[0] != 1 {
                return Err(invalid("not an MS-OVBA compressed container"));
            }
        }
        while self.served == self.out.len() {
            if buf.is_empty() || !self.next_chunk()? {
                return Ok(0);
            }
        }
        Ok(super::serve(&self.out, &mut self.served, buf))
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("MS-OVBA: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_specification_example() {
        // MS-OVBA 3.2.3: "#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa".
        let compressed = [
            0x01, 0x2F, 0xB0, 0x00, 0x23, 0x61, 0x61, 0x61, 0x62, 0x63, 0x64, 0x65, 0x82, 0x66,
            0x00, 0x70, 0x61, 0x67, 0x68, 0x69, 0x6A, 0x01, 0x38, 0x08, 0x61, 0x6B, 0x6C, 0x00,
            0x30, 0x6D, 0x6E, 0x6F, 0x70, 0x06, 0x71, 0x02, 0x70, 0x04, 0x10, 0x72, 0x73, 0x74,
            0x75, 0x76, 0x10, 0x77, 0x78, 0x79, 0x7A, 0x00, 0x3C,
        ];
        let mut out = String::new();
        OvbaReader::new(&compressed[..])
            .read_to_string(&mut out)
            .expect("decodes");
        assert_eq!(
            out,
            "#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let err = OvbaReader::new(&[0x01, 0xFF, 0xBF, 0xFF, 0xFF][..]).read_to_end(&mut out);
        assert!(err.is_err());
        assert!(
            OvbaReader::new(&b"plain"[..])
                .read_to_end(&mut out)
                .is_err()
        );
    }
}
