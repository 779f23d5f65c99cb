//! Read-only memory-mapped data files and typed, alignment-checked views of
//! their payload (vectors as `f32`, ids as `u64`, codes as `u8`...).
//!
//! The only module allowed `unsafe`: creating the map.

#![allow(unsafe_code)]

use crate::error::{Error, Result};
use crate::file::{DataHeader, DATA_HEADER_LEN};
use bytemuck::Pod;
use memmap2::Mmap;
use std::fs::File;
use std::marker::PhantomData;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// Whether opening a map reads the whole payload to check its CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Check the header only (cheap; the payload is paged in lazily).
    Header,
    /// Also check the payload CRC (reads every page once).
    Full,
}

/// A data file mapped read-only.
#[derive(Debug)]
pub struct MappedFile {
    map: Mmap,
    header: DataHeader,
    path: PathBuf,
}

impl MappedFile {
    /// Maps `path` and checks its header (and, with [`Verify::Full`], its payload).
    pub fn open(path: impl AsRef<Path>, verify: Verify) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        // SAFETY: data files are immutable once renamed into place (they are only
        // ever written under a temporary name) and the data directory is locked by
        // this process, so nothing truncates or rewrites the file while it is mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("mmap", &path, e))?;
        let header = DataHeader::decode(&map, &path)?;
        if verify == Verify::Full {
            header.verify_payload(&map[DATA_HEADER_LEN..], &path)?;
        }
        Ok(MappedFile { map, header, path })
    }

    /// The file's header.
    pub fn header(&self) -> &DataHeader {
        &self.header
    }

    /// The payload bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map[DATA_HEADER_LEN..]
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The payload as `[T]`, checking element size (against the header) and alignment.
    pub fn as_slice<T: Pod>(&self) -> Result<&[T]> {
        let bytes = self.bytes();
        let size = std::mem::size_of::<T>();
        let elem_ok = self.header.elem_size == 0 || self.header.elem_size as usize == size;
        let addr = bytes.as_ptr() as usize;
        let layout_err = || Error::Layout {
            file: self.path.clone(),
            ty: std::any::type_name::<T>(),
            len: bytes.len(),
            size,
            align: std::mem::align_of::<T>(),
            addr_align: if addr == 0 {
                0
            } else {
                1 << addr.trailing_zeros()
            },
        };
        if !elem_ok {
            return Err(layout_err());
        }
        bytemuck::try_cast_slice(bytes).map_err(|_| layout_err())
    }
}

/// A mapped data file viewed as `[T]`; size and alignment checked once at open.
#[derive(Debug)]
pub struct MappedArray<T: Pod> {
    file: MappedFile,
    _ty: PhantomData<T>,
}

impl<T: Pod> MappedArray<T> {
    /// Maps `path` and checks that its payload is a whole, aligned `[T]`.
    pub fn open(path: impl AsRef<Path>, verify: Verify) -> Result<Self> {
        Self::from_file(MappedFile::open(path, verify)?)
    }

    /// Views an already mapped file as `[T]`.
    pub fn from_file(file: MappedFile) -> Result<Self> {
        file.as_slice::<T>()?;
        Ok(MappedArray {
            file,
            _ty: PhantomData,
        })
    }

    /// The underlying file.
    pub fn file(&self) -> &MappedFile {
        &self.file
    }
}

impl<T: Pod> Deref for MappedArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // Checked in `from_file`; the map never changes.
        bytemuck::cast_slice(self.file.bytes())
    }
}
