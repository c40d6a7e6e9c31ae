//! Reading a journal file record by record.
//!
//! The header is checked (magic, version, record size) before any record is read. Records are
//! read in order; a file that ends inside a record yields one [`JournalError::TruncatedRecord`]
//! with the record's offset (never silently dropped), and iteration stops after any error.

use super::{HEADER_SIZE, JournalError, MAGIC, MIN_VERSION, RECORD_SIZE, Record, VERSION};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads a journal's records in order. An [`Iterator`] of `Result<Record, JournalError>`.
///
/// ```
/// use engine::journal::{JournalReader, MAGIC, RECORD_SIZE};
/// let mut bytes = MAGIC.to_vec();
/// bytes.extend_from_slice(&1u16.to_le_bytes());
/// bytes.extend_from_slice(&(RECORD_SIZE as u16).to_le_bytes());
/// bytes.extend_from_slice(&[0; 4]);
/// bytes.extend_from_slice(&[0; RECORD_SIZE]);
/// let reader = JournalReader::new(&bytes[..], "mem.rtj").unwrap();
/// assert_eq!(reader.count(), 1);
/// ```
#[derive(Debug)]
pub struct JournalReader<R> {
    src: R,
    path: PathBuf,
    offset: u64,
    index: u64,
    done: bool,
    unknown: u64,
}

impl JournalReader<std::io::BufReader<std::fs::File>> {
    /// Open `path` and check its header.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let f =
            std::fs::File::open(path).map_err(|err| JournalError::Io { path: path.to_path_buf(), offset: 0, err })?;
        JournalReader::new(std::io::BufReader::with_capacity(1 << 16, f), path)
    }
}

/// Read until `buf` is full or the source ends; returns the bytes read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> JournalReader<R> {
    /// Read and check the header from `src`; `path` names the source in errors.
    pub fn new(mut src: R, path: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let path = path.into();
        let mut h = [0u8; HEADER_SIZE];
        let n = read_full(&mut src, &mut h).map_err(|err| JournalError::Io { path: path.clone(), offset: 0, err })?;
        if n >= MAGIC.len() && h[..8] != MAGIC || n < MAGIC.len() && h[..n] != MAGIC[..n] {
            let found = h[..n.min(8)].escape_ascii().to_string();
            return Err(JournalError::BadMagic { path, found });
        }
        if n < HEADER_SIZE {
            return Err(JournalError::TruncatedHeader { path, len: n });
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(JournalError::Version { path, found: version });
        }
        let size = u16::from_le_bytes([h[10], h[11]]);
        if usize::from(size) != RECORD_SIZE {
            return Err(JournalError::RecordSize { path, found: size });
        }
        Ok(JournalReader { src, path, offset: HEADER_SIZE as u64, index: 0, done: false, unknown: 0 })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.index
    }

    /// Records read so far that held an unknown kind or value (see [`Record::has_unknown`]).
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    /// The next record, `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, JournalError> {
        if self.done {
            return Ok(None);
        }
        let mut b = [0u8; RECORD_SIZE];
        let n = read_full(&mut self.src, &mut b).map_err(|err| {
            self.done = true;
            JournalError::Io { path: self.path.clone(), offset: self.offset, err }
        })?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if n < RECORD_SIZE {
            self.done = true;
            return Err(JournalError::TruncatedRecord {
                path: self.path.clone(),
                offset: self.offset,
                index: self.index,
                len: n,
            });
        }
        let r = Record::decode(&b);
        self.offset += RECORD_SIZE as u64;
        self.index += 1;
        if r.has_unknown() {
            self.unknown += 1;
        }
        Ok(Some(r))
    }
}

impl<R: Read> Iterator for JournalReader<R> {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

impl<R: Read> std::iter::FusedIterator for JournalReader<R> {}
