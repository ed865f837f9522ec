//! Opening a file we only read, in a place others can write: a name there
//! may have been replaced by a link to `/dev/zero`, a FIFO that never
//! answers, or a file elsewhere. [`regular_file`] follows no link, never
//! blocks on a FIFO or device, and hands back only a regular file.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` for reading if it is a regular file and not a symbolic link.
///
/// Fails with the open's error, or with `InvalidData` ("not a regular
/// file") for a link, FIFO, device, socket or directory.
pub fn regular_file(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty()).map_err(|err| {
        if err == rustix::io::Errno::LOOP {
            not_regular()
        } else {
            err.into()
        }
    })?);
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "not a regular file (a link, FIFO or device someone put in its place?)",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn links_fifos_and_directories_are_refused_regular_files_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(regular_file(&file).is_ok());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for bad in [&link, &fifo, &dir.path().to_owned()] {
            let err = regular_file(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{}", bad.display());
        }
    }
}
