//! Backing stores for NBD exports: a regular file or a block device, opened
//! once and shared by every connection to the export.
//!
//! This module owns the syscalls that move export data: positioned reads
//! and writes (pread/pwrite), fdatasync, hole punching and zeroing
//! (fallocate on files; BLKDISCARD, BLKZEROOUT and fallocate on block
//! devices). Whether a request may run at all is decided in
//! `opie_core::nbd` before any of this is called.
//!
//! One open file description per export means every connection shares one
//! page cache, and [`BlockFile::sync_data`] makes every completed write
//! durable whichever connection made it: what lets the server advertise
//! NBD_FLAG_CAN_MULTI_CONN truthfully.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// `BLKDISCARD` = `_IO(0x12, 119)` from `<linux/fs.h>` (not in libc).
const BLKDISCARD: libc::Ioctl = 0x1277;
/// `BLKZEROOUT` = `_IO(0x12, 127)` from `<linux/fs.h>` (not in libc).
const BLKZEROOUT: libc::Ioctl = 0x127f;

/// Zeroes written when no cheaper way to zero a range works.
static ZEROES: [u8; 256 * 1024] = [0; 256 * 1024];

/// Why an export's backing store cannot be opened.
#[derive(Debug, Error)]
pub enum BlockFileError {
    /// open(2) failed.
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// The path is neither a regular file nor a block device.
    #[error("{path} is neither a regular file nor a block device")]
    NotFileOrDevice { path: PathBuf },
    /// The size could not be read.
    #[error("cannot read the size of {path}: {source}")]
    Size { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    BlockDevice,
}

/// An open export backing store. All methods take `&self` and use
/// positioned I/O, so one `BlockFile` may be shared across threads.
#[derive(Debug)]
pub struct BlockFile {
    file: File,
    size: u64,
    kind: Kind,
}

impl BlockFile {
    /// Opens `path` for reading (and writing unless `read_only`) and reads
    /// its size: the file length, or the device size for a block device
    /// (lseek to the end, which the kernel answers from the same value as
    /// BLKGETSIZE64).
    pub fn open(path: &Path, read_only: bool) -> Result<Self, BlockFileError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BlockFileError::Open { path: path.to_owned(), source })?;
        let size_err = |source| BlockFileError::Size { path: path.to_owned(), source };
        let file_type = file.metadata().map_err(size_err)?.file_type();
        let (kind, size) = if file_type.is_file() {
            (Kind::Regular, file.metadata().map_err(size_err)?.len())
        } else if file_type.is_block_device() {
            let size = (&file).seek(SeekFrom::End(0)).map_err(size_err)?;
            (Kind::BlockDevice, size)
        } else {
            return Err(BlockFileError::NotFileOrDevice { path: path.to_owned() });
        };
        Ok(BlockFile { file, size, kind })
    }

    /// Size in bytes, as read when opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fills `buf` from `offset`. A short file (truncated under the server)
    /// is an `UnexpectedEof` error, never a short read.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// fdatasync: every write completed before the call is durable after it.
    pub fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Discards a range. Discarding is a hint: when the file system or
    /// device cannot do it the call still succeeds and the data stays.
    pub fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        let result = match self.kind {
            Kind::Regular => self.fallocate(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, offset, len),
            Kind::BlockDevice => self.range_ioctl(BLKDISCARD, offset, len),
        };
        match result {
            Err(e) if is_unsupported(&e) => Ok(()),
            other => other,
        }
    }

    /// Makes a range read as zeroes. With `may_punch` the range may be
    /// deallocated (a hole, or an unmapped device range that reads as
    /// zeroes); without it the range stays allocated (NBD_CMD_FLAG_NO_HOLE).
    /// Falls back to writing zeroes when no faster way is supported.
    pub fn write_zeroes(&self, offset: u64, len: u64, may_punch: bool) -> io::Result<()> {
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let fast = match (self.kind, may_punch) {
            // Regular files: a punched hole reads as zeroes.
            (Kind::Regular, true) => self.fallocate(punch, offset, len),
            // ZERO_RANGE leaves the range allocated (unwritten extents).
            (Kind::Regular, false) => {
                self.fallocate(libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE, offset, len)
            }
            // Block devices: punching asks the device to unmap and zero.
            (Kind::BlockDevice, true) => {
                self.fallocate(punch, offset, len).or_else(|_| self.range_ioctl(BLKZEROOUT, offset, len))
            }
            // BLKZEROOUT never unmaps (the kernel passes NOUNMAP).
            (Kind::BlockDevice, false) => self.range_ioctl(BLKZEROOUT, offset, len),
        };
        match fast {
            Err(e) if is_unsupported(&e) => self.write_zeroes_slowly(offset, len),
            other => other,
        }
    }

    fn write_zeroes_slowly(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let end = offset.saturating_add(len);
        while offset < end {
            let n = usize::try_from(end - offset).unwrap_or(usize::MAX).min(ZEROES.len());
            self.write_at(&ZEROES[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    fn fallocate(&self, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
        let offset = libc::off_t::try_from(offset).map_err(|_| einval())?;
        let len = libc::off_t::try_from(len).map_err(|_| einval())?;
        // SAFETY: fallocate takes no pointers; the fd is open for the life
        // of `self.file`.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, offset, len) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    fn range_ioctl(&self, request: libc::Ioctl, offset: u64, len: u64) -> io::Result<()> {
        let range: [u64; 2] = [offset, len];
        // SAFETY: BLKDISCARD and BLKZEROOUT read exactly two u64 (start,
        // length) through the pointer, which points at `range`, alive and
        // initialised for the whole call; the fd is open for the life of
        // `self.file`.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request, range.as_ptr()) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

/// The open file, for splicing its pages into a socket
/// (`crate::splice`).
impl AsFd for BlockFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// Errors meaning "this way of discarding or zeroing is not available
/// here" (as opposed to an I/O failure): unsupported operation, unaligned
/// range for a device ioctl, or an ioctl the device does not know.
fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL | libc::ENOTTY | libc::ENODEV))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn file_of(len: usize, fill: u8) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("export");
        std::fs::write(&path, vec![fill; len]).expect("write export");
        (dir, path)
    }

    fn read(bf: &BlockFile, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0xee; len];
        bf.read_at(&mut buf, offset).expect("read");
        buf
    }

    #[test]
    fn reads_writes_and_size() {
        let (_dir, path) = file_of(1 << 20, 0x11);
        let bf = BlockFile::open(&path, false).expect("open");
        assert_eq!(bf.size(), 1 << 20);
        bf.write_at(b"hello", 4093).expect("write across a page");
        bf.sync_data().expect("fdatasync");
        assert_eq!(read(&bf, 4092, 7), b"\x11hello\x11");
        let mut past_end = [0u8; 2];
        let err = bf.read_at(&mut past_end, (1 << 20) - 1).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn read_only_refuses_writes() {
        let (_dir, path) = file_of(4096, 0);
        let bf = BlockFile::open(&path, true).expect("open");
        assert!(bf.write_at(b"x", 0).is_err());
    }

    #[test]
    fn trim_punches_a_hole_and_reads_zero() {
        let (_dir, path) = file_of(1 << 20, 0x5a);
        let bf = BlockFile::open(&path, false).expect("open");
        let before = std::fs::metadata(&path).expect("stat").blocks();
        bf.trim(0, 512 * 1024).expect("trim");
        assert_eq!(bf.size(), 1 << 20);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 1 << 20);
        let after = std::fs::metadata(&path).expect("stat").blocks();
        assert!(after < before, "blocks {before} -> {after}");
        assert_eq!(read(&bf, 0, 4096), vec![0; 4096]);
        assert_eq!(read(&bf, 512 * 1024, 4), vec![0x5a; 4]);
    }

    #[test]
    fn write_zeroes_with_and_without_holes() {
        let (_dir, path) = file_of(1 << 20, 0x77);
        let bf = BlockFile::open(&path, false).expect("open");
        bf.write_zeroes(10, 100_000, true).expect("zero, may punch");
        assert_eq!(read(&bf, 9, 1), vec![0x77]);
        assert_eq!(read(&bf, 10, 100_000), vec![0; 100_000]);
        assert_eq!(read(&bf, 100_010, 1), vec![0x77]);
        let before = std::fs::metadata(&path).expect("stat").blocks();
        bf.write_zeroes(200_000, 300_000, false).expect("zero, no hole");
        assert_eq!(read(&bf, 200_000, 300_000), vec![0; 300_000]);
        assert_eq!(read(&bf, 500_000, 1), vec![0x77]);
        let after = std::fs::metadata(&path).expect("stat").blocks();
        assert!(after >= before, "NO_HOLE freed blocks: {before} -> {after}");
        bf.write_zeroes_slowly(600_000, 300_001).expect("slow zero");
        assert_eq!(read(&bf, 600_000, 300_001), vec![0; 300_001]);
        assert_eq!(read(&bf, 900_001, 1), vec![0x77]);
    }

    #[test]
    fn directories_and_missing_paths_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(BlockFile::open(dir.path(), true), Err(BlockFileError::NotFileOrDevice { .. })));
        assert!(matches!(BlockFile::open(&dir.path().join("missing"), true), Err(BlockFileError::Open { .. })));
    }
}
