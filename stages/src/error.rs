//! Errors that say what is wrong and where: file, line, key or byte offset.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid UTF-8 at byte offset {offset}")]
    InvalidUtf8 { path: PathBuf, offset: u64 },
    #[error("{path}:{line}: {message}")]
    Input {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Data(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn invalid_utf8(path: &Path, offset: u64) -> Error {
        Error::InvalidUtf8 {
            path: path.to_path_buf(),
            offset,
        }
    }

    pub fn input(path: &Path, line: u64, message: impl Into<String>) -> Error {
        Error::Input {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::Config(message.into())
    }

    pub fn data(message: impl Into<String>) -> Error {
        Error::Data(message.into())
    }
}
