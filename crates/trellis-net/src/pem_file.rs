//! Reading and writing PEM files, with errors that name the file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::error::CertError;

/// The largest PEM file read: 1 MiB, far above any certificate bundle.
const MAX_PEM_FILE: u64 = 1 << 20;

/// Reads a PEM file as text.
///
/// Fails with [`CertError::Read`] naming the file when it cannot be read,
/// is larger than 1 MiB or is not UTF-8.
pub fn read_pem_file(path: &Path) -> Result<String, CertError> {
    let read_error = |source| CertError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_error)?.len();
    if len > MAX_PEM_FILE {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{len} bytes is too large for a PEM certificate or key file"),
        )));
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a text (UTF-8) PEM file",
        ))
    })
}

/// Writes `contents` to a new file at `path`.
///
/// Refuses to overwrite an existing file ([`CertError::Exists`]): losing a
/// CA key by accident would mean re-issuing every node certificate. With
/// `private` set (keys), the file is created readable by its owner only
/// (mode `0600` on Unix).
pub fn write_pem_file(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    let write_error = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            write_error(source)
        }
    })?;
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Wraps an error about a file's contents so its message names the file.
pub(crate) fn in_file(path: &Path) -> impl FnOnce(CertError) -> CertError + '_ {
    move |err| match err {
        err @ (CertError::Read { .. } | CertError::Write { .. } | CertError::Exists { .. }) => err,
        other => CertError::InFile {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "trellis-net-pem-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    #[test]
    fn writes_then_refuses_to_overwrite() {
        let dir = temp_dir("overwrite");
        let path = dir.join("ca.key");
        write_pem_file(&path, "first", true).expect("first write");
        let err = write_pem_file(&path, "second", true).expect_err("second write");
        assert!(matches!(err, CertError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");
        assert_eq!(read_pem_file(&path).expect("read"), "first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).expect("clean up");
    }

    #[test]
    fn missing_file_error_names_it() {
        let err = read_pem_file(Path::new("/nonexistent/trellis/node.crt")).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/trellis/node.crt"),
            "{err}"
        );
    }
}
