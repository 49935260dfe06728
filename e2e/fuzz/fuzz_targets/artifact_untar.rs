//! The artifact untar of kluctl-controller (`kluctl_controller::source::artifact`): what it does
//! with the tar.gz a source's `status.artifact.url` serves.
//!
//! Input: a first byte choosing the form, then the archive. Form bit 0 clear: the rest is a tar
//! stream that the target gzips (so mutations reach the tar parser); set: the rest is the
//! download as is (gzip framing, multi-member streams, bombs). Limits are small (64 KiB, 64
//! entries) so the size checks are reached.
//!
//! Checked beyond "no panic", whether the extraction succeeds or not: nothing appears outside the
//! destination (a sibling directory stays empty, the parent holds only the two); the destination
//! holds only directories and regular files (no symlinks, hard links, devices, FIFOs), no file
//! has setuid/setgid/sticky bits, and the bytes on disk stay within the limit.
#![no_main]

use flate2::Compression;
use flate2::write::GzEncoder;
use kluctl_controller::source::artifact::{UnpackLimits, fuzz_extract};
use libfuzzer_sys::fuzz_target;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

const LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 64 << 10,
    max_entries: 64,
};

/// Regular-file bytes below `dir`; panics on anything but directories and regular files.
fn check_tree(dir: &Path) -> u64 {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).expect("read the destination") {
        let path = entry.expect("read a directory entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat an unpacked entry");
        let kind = meta.file_type();
        assert!(!kind.is_symlink(), "a symlink was created: {}", path.display());
        assert_eq!(
            meta.permissions().mode() & 0o7000,
            0,
            "special mode bits on {}",
            path.display()
        );
        if kind.is_dir() {
            bytes += check_tree(&path);
        } else {
            assert!(
                kind.is_file(),
                "not a regular file: {} ({kind:?})",
                path.display()
            );
            assert_eq!(meta.nlink(), 1, "a hard link was created: {}", path.display());
            bytes += meta.len();
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let archive = if form & 1 == 0 {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(rest).expect("gzip in memory");
        gz.finish().expect("gzip in memory")
    } else {
        rest.to_vec()
    };
    let work = tempfile::tempdir().expect("a temporary directory");
    let root = work.path().join("root");
    let outside = work.path().join("outside");
    std::fs::create_dir(&root).expect("create the destination");
    std::fs::create_dir(&outside).expect("create the sibling");

    let result = fuzz_extract(&archive, &root, LIMITS);

    let mut beside: Vec<_> = std::fs::read_dir(work.path())
        .expect("read the parent")
        .map(|e| e.expect("read a parent entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["outside", "root"],
        "something was written beside the destination"
    );
    assert!(
        std::fs::read_dir(&outside)
            .expect("read the sibling")
            .next()
            .is_none(),
        "something was written outside the destination"
    );
    let on_disk = check_tree(&root);
    assert!(
        on_disk <= LIMITS.max_bytes,
        "{on_disk} bytes unpacked, over the limit"
    );
    if let Ok((files, bytes)) = result {
        assert!(
            files <= LIMITS.max_entries,
            "{files} files from at most {} entries",
            LIMITS.max_entries
        );
        // Duplicate entries overwrite: what is on disk is at most what was written.
        assert!(on_disk <= bytes, "{on_disk} bytes on disk, {bytes} reported");
    }
    let _ = make_removable(&root);
});

/// Files unpacked with mode 0 would keep the temporary directory from being removed by a
/// non-root user.
fn make_removable(dir: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            make_removable(&path)?;
        }
    }
    Ok(())
}
