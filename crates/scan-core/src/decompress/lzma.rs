//! The LZMA family (xz, `.lzma`, raw LZMA behind its five property bytes, lzip) decoded by
//! liblzma, XZ Utils' own library. It decodes the solid LZMA streams of installers about 1.4x
//! faster than the pure-Rust decoder did, and installers spend most of their scan there.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;

use liblzma::stream::{Action, CONCATENATED, Error as LzmaError, Filters, Status, Stream};

use super::DECODER_MEMORY_LIMIT;

/// How much compressed input is read ahead of the decoder at a time.
const INPUT_BUFFER: usize = 64 << 10;

/// A liblzma decoder reading from `input`.
pub(super) struct Decoder<R> {
    input: BufReader<R>,
    stream: Stream,
    ended: bool,
}

impl<R: Read> Decoder<R> {
    fn new(input: R, stream: Stream) -> Self {
        Decoder {
            input: BufReader::with_capacity(INPUT_BUFFER, input),
            stream,
            ended: false,
        }
    }
}

/// `.xz`, several concatenated streams included (as `xz -d` accepts), under the decoder memory
/// limit, which liblzma checks per block before it allocates the dictionary.
pub(super) fn xz<R: Read>(input: R) -> io::Result<Decoder<R>> {
    let stream = Stream::new_stream_decoder(DECODER_MEMORY_LIMIT, CONCATENATED).map_err(error)?;
    Ok(Decoder::new(input, stream))
}

/// `.lzma` (LZMA_Alone): properties, dictionary size and uncompressed size, then the stream.
pub(super) fn alone<R: Read>(input: R) -> io::Result<Decoder<R>> {
    let stream = Stream::new_lzma_decoder(DECODER_MEMORY_LIMIT).map_err(error)?;
    Ok(Decoder::new(input, stream))
}

/// A raw LZMA stream: a properties byte and a dictionary size, then the stream up to its end
/// marker. The dictionary is checked against the memory limit before the decoder allocates it.
pub(super) fn raw<R: Read>(mut input: R) -> io::Result<Decoder<R>> {
    let mut header = [0u8; 5];
    input.read_exact(&mut header)?;
    raw_with(input, header)
}

fn raw_with<R: Read>(input: R, header: [u8; 5]) -> io::Result<Decoder<R>> {
    let dict_size = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if u64::from(dict_size) > DECODER_MEMORY_LIMIT {
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("an LZMA dictionary of {dict_size} bytes"),
        ));
    }
    let mut filters = Filters::new();
    filters.lzma1_properties(&header).map_err(error)?;
    let stream = Stream::new_raw_decoder(&filters).map_err(error)?;
    Ok(Decoder::new(input, stream))
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.ended {
            return Ok(0);
        }
        loop {
            let input = self.input.fill_buf()?;
            let at_end = input.is_empty();
            let (read_before, written_before) = (self.stream.total_in(), self.stream.total_out());
            let action = if at_end { Action::Finish } else { Action::Run };
            let status = self.stream.process(input, buf, action).map_err(error)?;
            let consumed = (self.stream.total_in() - read_before) as usize;
            let written = (self.stream.total_out() - written_before) as usize;
            self.input.consume(consumed);
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(written);
            }
            if written > 0 {
                return Ok(written);
            }
            if at_end {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the LZMA data ends before its end",
                ));
            }
            if consumed == 0 {
                return Err(invalid("the LZMA decoder cannot go on with this data"));
            }
        }
    }
}

/// liblzma's errors as the kinds the formats tell apart: memory (not examined, unsupported)
/// against damage (corrupt).
fn error(e: LzmaError) -> io::Error {
    let kind = match e {
        LzmaError::MemLimit | LzmaError::Mem => io::ErrorKind::OutOfMemory,
        LzmaError::Data | LzmaError::Format | LzmaError::Options => io::ErrorKind::InvalidData,
        LzmaError::NoCheck | LzmaError::UnsupportedCheck | LzmaError::Program => {
            io::ErrorKind::Other
        }
    };
    let what = match e {
        LzmaError::MemLimit | LzmaError::Mem => format!(
            "the LZMA decoder would need more than {} MiB of memory",
            DECODER_MEMORY_LIMIT >> 20
        ),
        LzmaError::Data => "corrupt LZMA data".to_owned(),
        LzmaError::Format => "not LZMA data of the expected format".to_owned(),
        LzmaError::Options => "LZMA settings the decoder does not accept".to_owned(),
        other => format!("the LZMA decoder failed: {other}"),
    };
    io::Error::new(kind, what)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// lzip's members one after another: each a 6-byte header (`LZIP`, version 1, the coded
/// dictionary size), an LZMA stream (lc 3, lp 0, pb 2) ended by its end marker, and a 20-byte
/// trailer whose last 8 bytes give the member's size. The members are found from the end, by
/// those sizes, as lzip's own tools do; each LZMA stream is then read from its start, bounded
/// to its own bytes (the decoder reads ahead).
pub(super) struct Lzip<R> {
    input: Rc<RefCell<R>>,
    /// Members not started yet: their start and size.
    members: std::vec::IntoIter<(u64, u64)>,
    current: Option<Decoder<io::Take<Shared<R>>>>,
}

/// A reader several owners take turns with.
pub(super) struct Shared<R>(Rc<RefCell<R>>);

impl<R: Read> Read for Shared<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl<R: Read + Seek> Lzip<R> {
    pub(super) fn new(mut input: R) -> io::Result<Self> {
        let mut members = Vec::new();
        let mut end = input.seek(SeekFrom::End(0))?;
        while end > 0 {
            let mut size = [0u8; 8];
            if end < 26 {
                return Err(invalid(
                    "data before the first lzip member, or a member cut short",
                ));
            }
            input.seek(SeekFrom::Start(end - 8))?;
            input.read_exact(&mut size)?;
            let size = u64::from_le_bytes(size);
            if !(26..=end).contains(&size) {
                return Err(invalid(
                    "the lzip members do not hold together: damaged or cut short",
                ));
            }
            let start = end - size;
            let mut header = [0u8; 5];
            input.seek(SeekFrom::Start(start))?;
            input.read_exact(&mut header)?;
            if &header != b"LZIP\x01" {
                return Err(invalid(
                    "an lzip member's size does not lead to its header: damaged or cut short",
                ));
            }
            members.push((start, size));
            end = start;
        }
        members.reverse();
        Ok(Lzip {
            input: Rc::new(RefCell::new(input)),
            members: members.into_iter(),
            current: None,
        })
    }

    /// Starts the next member; `false` after the last.
    fn next_member(&mut self) -> io::Result<bool> {
        let Some((start, size)) = self.members.next() else {
            return Ok(false);
        };
        let coded = {
            let mut input = self.input.borrow_mut();
            let mut header = [0u8; 6];
            input.seek(SeekFrom::Start(start))?;
            input.read_exact(&mut header)?;
            header[5]
        };
        let base = 1u64 << (coded & 0x1F);
        let dict = base - (base / 16) * u64::from(coded >> 5);
        if !(1 << 12..=1 << 29).contains(&dict) {
            return Err(invalid(format!("an lzip dictionary of {dict} bytes")));
        }
        // lzip's fixed properties (lc 3, lp 0, pb 2) as LZMA's properties byte, then the size.
        let mut header = [3 + 2 * 45, 0, 0, 0, 0];
        header[1..].copy_from_slice(&(dict as u32).to_le_bytes());
        let body = Shared(Rc::clone(&self.input)).take(size - 26);
        self.current = Some(raw_with(body, header)?);
        Ok(true)
    }
}

impl<R: Read + Seek> Read for Lzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(member) = &mut self.current {
                let n = member.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            if !self.next_member()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_stream_decodes_behind_its_properties() {
        let data = b"an LZMA test, an LZMA test, an LZMA test".repeat(1000);
        let mut options = liblzma::stream::LzmaOptions::new_preset(6).expect("preset");
        options.dict_size(1 << 16);
        let mut filters = Filters::new();
        filters.lzma1(&options);
        let mut encoder = Stream::new_raw_encoder(&filters).expect("encoder");
        let mut coded = Vec::with_capacity(data.len());
        encoder
            .process_vec(&data, &mut coded, Action::Finish)
            .expect("encode");
        // lc 3, lp 0, pb 2 and a 64 KiB dictionary, as the five bytes a raw stream starts with.
        let mut input = vec![3 + 2 * 45];
        input.extend_from_slice(&(1u32 << 16).to_le_bytes());
        input.extend_from_slice(&coded);
        let mut out = Vec::new();
        raw(&input[..])
            .expect("decoder")
            .read_to_end(&mut out)
            .expect("decode");
        assert_eq!(out, data);

        let mut cut = Vec::new();
        let err = raw(&input[..input.len() - 8])
            .expect("decoder")
            .read_to_end(&mut cut)
            .expect_err("cut short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_dictionary_over_the_limit_is_refused_before_it_is_allocated() {
        let mut input = vec![3 + 2 * 45];
        input.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = raw(&input[..]).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    }
}
