//! ARJ's compression methods. Methods 1 to 3 are the LZ77 and Huffman scheme ARJ shares with
//! LHA's `-lh7-` (a 64 KiB window, the same code tables), decoded by delharc; method 4 is
//! ARJ's own "fastest" scheme, a 32 KiB window with lengths and distances in unary-prefixed
//! fields, decoded here. Both produce exactly the member's declared size: neither stream
//! marks its own end.

use std::io::{self, BufReader, Read};

use delharc::decode::{Decoder, Lh7Decoder};

/// Methods 1 to 3: delharc's `-lh7-` decoder, asked for no more than the member holds.
pub(super) struct ArjLh<R: Read> {
    decoder: Lh7Decoder<BufReader<R>>,
    left: u64,
}

impl<R: Read> ArjLh<R> {
    pub(super) fn new(inner: R, size: u64) -> Self {
        ArjLh {
            decoder: Lh7Decoder::new(BufReader::new(inner)),
            left: size,
        }
    }
}

impl<R: Read> Read for ArjLh<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        self.decoder
            .fill_buffer(&mut buf[..n])
            .map_err(|e| match e {
                delharc::LhaError::Io(e) => e,
                other => io::Error::new(io::ErrorKind::InvalidData, format!("ARJ: {other}")),
            })?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Method 4's window: its distances reach back at most 15,871 bytes.
const WINDOW: usize = 1 << 15;

/// Method 4: a length of 0 is a literal byte; otherwise a match of length + 2 bytes at a
/// distance coded the same way from a 9-bit base.
pub(super) struct ArjFastest<R> {
    bits: BitReader<R>,
    window: Box<[u8; WINDOW]>,
    pos: usize,
    /// Bytes produced so far, so a distance reaching before the start is caught.
    produced: u64,
    left: u64,
    copy_from: usize,
    copy_left: usize,
}

impl<R: Read> ArjFastest<R> {
    pub(super) fn new(inner: R, size: u64) -> Self {
        ArjFastest {
            bits: BitReader::new(inner),
            window: Box::new([0; WINDOW]),
            pos: 0,
            produced: 0,
            left: size,
            copy_from: 0,
            copy_left: 0,
        }
    }

    /// A value coded as up to `stop - start` one-bits (each adding the next power of two,
    /// from 2^start), a zero ending them early, then that many plus `start` bits.
    fn prefixed(&mut self, start: u32, stop: u32) -> io::Result<usize> {
        let (mut plus, mut power, mut width) = (0usize, 1usize << start, start);
        while width < stop {
            if self.bits.bits(1)? == 0 {
                break;
            }
            plus += power;
            power <<= 1;
            width += 1;
        }
        let value = if width == 0 {
            0
        } else {
            self.bits.bits(width)?
        };
        Ok(plus + value as usize)
    }

    fn put(&mut self, byte: u8) {
        self.window[self.pos] = byte;
        self.pos = (self.pos + 1) % WINDOW;
        self.produced += 1;
    }
}

impl<R: Read> Read for ArjFastest<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            if self.copy_left > 0 {
                let byte = self.window[self.copy_from];
                self.copy_from = (self.copy_from + 1) % WINDOW;
                self.copy_left -= 1;
                self.put(byte);
                buf[n] = byte;
                n += 1;
                self.left -= 1;
                continue;
            }
            let length = self.prefixed(0, 7)?;
            if length == 0 {
                let byte = self.bits.bits(8)? as u8;
                self.put(byte);
                buf[n] = byte;
                n += 1;
                self.left -= 1;
                continue;
            }
            let distance = self.prefixed(9, 13)? + 1;
            if distance as u64 > self.produced {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "ARJ: a match reaches before the start of the file",
                ));
            }
            self.copy_from = (self.pos + WINDOW - distance) % WINDOW;
            self.copy_left = length + 2;
        }
        Ok(n)
    }
}

/// Bits read most significant first.
struct BitReader<R> {
    inner: BufReader<R>,
    buffer: u64,
    count: u32,
}

impl<R: Read> BitReader<R> {
    fn new(inner: R) -> Self {
        BitReader {
            inner: BufReader::new(inner),
            buffer: 0,
            count: 0,
        }
    }

    fn bits(&mut self, n: u32) -> io::Result<u32> {
        while self.count < n {
            let mut byte = [0u8];
            self.inner.read_exact(&mut byte)?;
            self.buffer = (self.buffer << 8) | u64::from(byte[0]);
            self.count += 8;
        }
        self.count -= n;
        Ok(((self.buffer >> self.count) & ((1 << n) - 1)) as u32)
    }
}
