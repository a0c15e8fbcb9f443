//! Reading ahead in folder scans: the kernel is asked to start reading the next files while the
//! current ones are scanned, so disk reads and scanning overlap instead of taking turns.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;

/// Files advised ahead of the newest one started, at most.
const FILES_AHEAD: usize = 32;
/// Bytes advised ahead, at most: page cache the scan will use within moments, not a copy of
/// the folder.
const BYTES_AHEAD: u64 = 96 << 20;
/// Of a large file only its start is advised; the scan's own reads take the rest in order.
const PER_FILE: u64 = 16 << 20;

/// Tells the read-ahead thread which file the scan has reached.
pub(crate) struct ReadAhead {
    started: Option<mpsc::Sender<usize>>,
}

impl ReadAhead {
    /// Reads ahead over `paths` (in scan order; `None` for targets that are not local files).
    pub(crate) fn start(paths: Vec<Option<PathBuf>>) -> Self {
        let (started, reached) = mpsc::channel::<usize>();
        let spawned = std::thread::Builder::new()
            .name("verdict-readahead".into())
            .spawn(move || run(&paths, &reached));
        if let Err(error) = spawned {
            // Scanning is unchanged without it, only slower on a cold cache.
            tracing::debug!(%error, "no read-ahead thread");
            return ReadAhead { started: None };
        }
        ReadAhead {
            started: Some(started),
        }
    }

    /// The scan has started the file at `index`.
    pub(crate) fn reached(&self, index: usize) {
        if let Some(started) = &self.started {
            // A thread that ended has nothing more to read ahead.
            let _ = started.send(index);
        }
    }
}

fn run(paths: &[Option<PathBuf>], reached: &mpsc::Receiver<usize>) {
    let mut window = Window::default();
    while window.advance(paths, advise) {
        match reached.recv() {
            Ok(index) => window.position = window.position.max(index),
            Err(_) => return,
        }
    }
}

/// The files advised and not yet started, and where the scan is.
#[derive(Default)]
struct Window {
    /// The next file to advise.
    next: usize,
    /// Advised, not yet started: (index, bytes).
    ahead: VecDeque<(usize, u64)>,
    ahead_bytes: u64,
    /// The newest file the scan has started.
    position: usize,
}

impl Window {
    /// Advises files until the window is full; `false` once every file has been advised.
    fn advance(
        &mut self,
        paths: &[Option<PathBuf>],
        mut advise: impl FnMut(&std::path::Path) -> u64,
    ) -> bool {
        while let Some(&(index, bytes)) = self.ahead.front() {
            if index > self.position {
                break;
            }
            self.ahead.pop_front();
            self.ahead_bytes -= bytes;
        }
        while self.next < paths.len()
            && self.next <= self.position + FILES_AHEAD
            && self.ahead_bytes < BYTES_AHEAD
        {
            let bytes = paths[self.next].as_deref().map_or(0, &mut advise);
            self.ahead.push_back((self.next, bytes));
            self.ahead_bytes += bytes;
            self.next += 1;
        }
        self.next < paths.len()
    }
}

/// Starts reading the file's first [`PER_FILE`] bytes into the page cache; how many that is.
/// A file that cannot be opened is left to the scan, which reports why.
fn advise(path: &std::path::Path) -> u64 {
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    let len = file.metadata().map_or(0, |meta| meta.len()).min(PER_FILE);
    if let Some(advised) = std::num::NonZeroU64::new(len)
        && let Err(error) =
            rustix::fs::fadvise(&file, 0, Some(advised), rustix::fs::Advice::WillNeed)
    {
        tracing::debug!(%error, path = %path.display(), "read-ahead not started");
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advises over `count` files of `size` bytes with the scan at each of `positions` in
    /// turn; how many files had been advised after each step.
    fn advised_after(count: usize, size: u64, positions: &[usize]) -> Vec<usize> {
        let paths: Vec<Option<PathBuf>> = (0..count)
            .map(|i| Some(PathBuf::from(format!("f{i}"))))
            .collect();
        let mut window = Window::default();
        let mut advised = 0;
        let mut counts = Vec::new();
        window.advance(&paths, |_| {
            advised += 1;
            size
        });
        counts.push(advised);
        for &position in positions {
            window.position = position;
            window.advance(&paths, |_| {
                advised += 1;
                size
            });
            counts.push(advised);
        }
        counts
    }

    #[test]
    fn small_files_are_advised_a_window_of_files_ahead() {
        assert_eq!(
            advised_after(100, 1, &[10, 80]),
            vec![FILES_AHEAD + 1, 10 + FILES_AHEAD + 1, 100]
        );
    }

    #[test]
    fn large_files_are_advised_only_as_far_as_the_byte_window() {
        let per = 10 << 20;
        let window = BYTES_AHEAD.div_ceil(per) as usize;
        // The file being scanned is no longer ahead: the window starts after it.
        assert_eq!(advised_after(100, per, &[5]), vec![window, 5 + 1 + window]);
    }
}
