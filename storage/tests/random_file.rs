//! Positional files ([`RandomFile`]): reads and writes at offsets, vectored
//! reads, page-cache-only reads, `O_DIRECT`, preallocation, on the real file
//! system and through the fault-injecting backend (every operation kind
//! fails on demand with each fault).

use quiver_storage::backend::default_backend;
use quiver_storage::{Backend, Fault, FaultyBackend, FileOptions, FsBackend, Op, RandomFile};
use std::io::{ErrorKind, IoSliceMut};
use std::path::Path;
use std::sync::Arc;

fn make(path: &Path, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(path, &data).unwrap();
    data
}

#[test]
fn positional_and_vectored_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = make(&path, 10_000);
    let f = FsBackend
        .open_file(&path, FileOptions::read_write())
        .unwrap();
    let mut buf = vec![0u8; 100];
    f.read_at(&mut buf, 5000).unwrap();
    assert_eq!(buf, data[5000..5100]);
    let (mut a, mut b) = ([0u8; 3000], [0u8; 5000]);
    f.read_vectored_at(
        &mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)],
        1000,
    )
    .unwrap();
    assert_eq!(a[..], data[1000..4000]);
    assert_eq!(b[..], data[4000..9000]);
    let err = f.read_at(&mut [0u8; 10], 9995).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    let err = f
        .read_vectored_at(&mut [IoSliceMut::new(&mut [0u8; 600])], 9500)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    f.write_at(b"xyz", 20_000).unwrap();
    assert_eq!(f.len().unwrap(), 20_003);
    f.sync().unwrap();
    f.set_len(12_000).unwrap();
    assert_eq!(f.len().unwrap(), 12_000);
    f.allocate(12_000, (64 << 10) - 12_000).unwrap();
    assert_eq!(f.len().unwrap(), 64 << 10);
    f.allocate(0, 100).unwrap();
    assert_eq!(f.len().unwrap(), 64 << 10, "allocate never shrinks");
    let ro = FsBackend
        .open_file(&path, FileOptions::read_only())
        .unwrap();
    assert!(ro.write_at(b"no", 0).is_err());
}

#[test]
fn cached_reads_return_the_files_bytes_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = make(&path, 3 * 4096);
    let f = FsBackend
        .open_file(&path, FileOptions::read_only())
        .unwrap();
    let mut buf = vec![0u8; 5000];
    if let Some(n) = f.read_at_nowait(&mut buf, 100).unwrap() {
        assert_eq!(buf[..n], data[100..100 + n]);
    }
    if !cfg!(target_os = "linux") {
        assert!(!f.nowait_supported());
    }
    // Some file systems (tmpfs) refuse O_DIRECT.
    if let Ok(d) = FsBackend.open_file(&path, FileOptions::read_only().direct(true)) {
        assert!(!d.nowait_supported());
        assert_eq!(d.read_at_nowait(&mut buf, 0).unwrap(), None);
    }
}

#[test]
fn every_operation_takes_every_fault() {
    let ops: [(Op, fn(&dyn RandomFile) -> std::io::Result<()>); 8] = [
        (Op::ReadAt, |f| f.read_at(&mut [0; 8], 0)),
        (Op::ReadVectored, |f| {
            f.read_vectored_at(&mut [IoSliceMut::new(&mut [0; 8])], 0)
        }),
        (Op::ReadNowait, |f| {
            f.read_at_nowait(&mut [0; 8], 0).map(drop)
        }),
        (Op::WriteAt, |f| f.write_at(&[9; 8], 100)),
        (Op::Sync, |f| f.sync()),
        (Op::SetLen, |f| f.set_len(50)),
        (Op::Allocate, |f| f.allocate(0, 8192)),
        (Op::FileLen, |f| f.len().map(drop)),
    ];
    for fault in [
        Fault::NoSpace,
        Fault::Io,
        Fault::ShortWrite,
        Fault::TornWrite,
    ] {
        for (op, run) in ops {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            make(&path, 1000);
            let fb = FaultyBackend::new(default_backend());
            let f = fb.open_file(&path, FileOptions::read_write()).unwrap();
            run(&*f).unwrap();
            fb.fail_nth(Some(op), 0, fault);
            let err = run(&*f).unwrap_err();
            let want = match fault {
                Fault::NoSpace | Fault::ShortWrite => rustix::io::Errno::NOSPC,
                _ => rustix::io::Errno::IO,
            };
            assert_eq!(
                err.raw_os_error(),
                Some(want.raw_os_error()),
                "{fault:?} {op:?}"
            );
            assert_eq!(fb.injected(), 1);
            // A torn write is a power cut: nothing after it succeeds.
            assert_eq!(
                run(&*f).is_err(),
                fault == Fault::TornWrite,
                "{fault:?} {op:?}"
            );
        }
    }
    // A short or torn write leaves the first half of the buffer.
    for fault in [Fault::ShortWrite, Fault::TornWrite] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        make(&path, 0);
        let fb = FaultyBackend::new(Arc::new(FsBackend));
        let f = fb.open_file(&path, FileOptions::read_write()).unwrap();
        fb.fail_nth(Some(Op::WriteAt), 0, fault);
        assert!(f.write_at(&[1u8; 10], 0).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), [1u8; 5]);
    }
    let fb = FaultyBackend::new(default_backend());
    fb.fail_nth(Some(Op::OpenFile), 0, Fault::Io);
    let dir = tempfile::tempdir().unwrap();
    make(&dir.path().join("f"), 10);
    assert!(fb
        .open_file(&dir.path().join("f"), FileOptions::read_only())
        .is_err());
}
