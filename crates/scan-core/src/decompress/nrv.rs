//! NRV2B, the LZ77 variant of the UCL library that UPX packs executables with (its `LE32`
//! form: flag bits in little-endian 32-bit words, read from the top, between literal and
//! offset bytes). A match may reach back to the start of the output, so the whole output is
//! the history; the caller bounds its size before decoding.

use std::io::{self, BufReader, Read};

pub(super) struct Nrv2b<R> {
    input: BufReader<R>,
    bits: u32,
    bits_left: u32,
    out: Vec<u8>,
    served: usize,
    size: usize,
    last_offset: usize,
    /// A match being copied: its offset and the bytes left of it.
    copying: (usize, usize),
    done: bool,
}

impl<R: Read> Nrv2b<R> {
    pub(super) fn new(input: R, size: usize) -> Self {
        Nrv2b {
            input: BufReader::new(input),
            bits: 0,
            bits_left: 0,
            out: Vec::new(),
            served: 0,
            size,
            last_offset: 1,
            copying: (0, 0),
            done: false,
        }
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut byte = [0u8];
        self.input.read_exact(&mut byte)?;
        Ok(byte[0])
    }

    fn bit(&mut self) -> io::Result<u32> {
        if self.bits_left == 0 {
            let mut word = [0u8; 4];
            self.input.read_exact(&mut word)?;
            self.bits = u32::from_le_bytes(word);
            self.bits_left = 32;
        }
        self.bits_left -= 1;
        Ok((self.bits >> self.bits_left) & 1)
    }

    /// A number coded as pairs of a data bit and a stop bit, starting from `value`.
    fn gamma(&mut self, mut value: usize) -> io::Result<usize> {
        loop {
            value = value * 2 + self.bit()? as usize;
            if value > 1 << 30 {
                return Err(invalid("a length or offset out of range"));
            }
            if self.bit()? == 1 {
                return Ok(value);
            }
        }
    }

    /// Decodes literals and the next match (or the end), leaving the match to be copied.
    fn step(&mut self) -> io::Result<()> {
        while self.bit()? == 1 {
            if self.out.len() >= self.size {
                return Err(past_size());
            }
            let literal = self.byte()?;
            self.out.push(literal);
        }
        let code = self.gamma(1)?;
        let offset = if code == 2 {
            self.last_offset
        } else {
            let high = (code - 3) as u32;
            let offset = (high << 8 | u32::from(self.byte()?)).wrapping_add(1);
            if offset == 0 {
                // (code - 3) * 256 + byte == 0xFFFFFFFF: the end marker.
                self.done = true;
                return Ok(());
            }
            self.last_offset = offset as usize;
            offset as usize
        };
        let mut length = (self.bit()? * 2 + self.bit()?) as usize;
        if length == 0 {
            length = self.gamma(1)? + 2;
        }
        length += usize::from(offset > 0xD00) + 1;
        if offset > self.out.len() {
            return Err(invalid("a match reaches before the start of the data"));
        }
        if length > self.size - self.out.len() {
            return Err(past_size());
        }
        self.copying = (offset, length);
        Ok(())
    }

    /// Copies up to `most` bytes of the match in progress.
    fn copy(&mut self, most: usize) {
        let (offset, left) = self.copying;
        let mut n = left.min(most);
        self.copying.1 -= n;
        // Runs of at most `offset` bytes do not overlap what they read.
        while n > 0 {
            let run = n.min(offset);
            let from = self.out.len() - offset;
            self.out.extend_from_within(from..from + run);
            n -= run;
        }
    }
}

fn past_size() -> io::Error {
    invalid("the data decodes past its declared size")
}

impl<R: Read> Read for Nrv2b<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // At most one buffer of new output per call, so the caps see a long match as it grows.
        while self.served == self.out.len() && !buf.is_empty() {
            if self.copying.1 > 0 {
                self.copy(buf.len());
            } else if self.done {
                break;
            } else {
                self.step()?;
            }
        }
        Ok(super::serve(&self.out, &mut self.served, buf))
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("NRV2B: {what}"))
}
