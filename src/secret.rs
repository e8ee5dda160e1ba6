//! The upstream API key: loaded from `ONLYTRAFFIC_API_KEY` or `ONLYTRAFFIC_API_KEY_FILE`, held as a
//! sensitive header value, and printed only as a fingerprint (length + SHA-256 prefix).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderValue;
use sha2::{Digest, Sha256};

/// The variable holding the key itself.
pub const KEY_ENV: &str = "ONLYTRAFFIC_API_KEY";
/// The variable naming a file that holds the key (e.g. a Docker secret).
pub const KEY_FILE_ENV: &str = "ONLYTRAFFIC_API_KEY_FILE";

/// Why no key could be loaded. The text never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{KEY_ENV} is not set; set it, or set {KEY_FILE_ENV} to a file holding the key")]
    Missing,
    #[error("both {KEY_ENV} and {KEY_FILE_ENV} are set; set only one of them")]
    Ambiguous,
    #[error("{KEY_FILE_ENV}: cannot read {path}: {source}; make the file readable by the proxy")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin} is empty; put the API key there")]
    Empty { origin: String },
    #[error(
        "{origin} holds characters that cannot be sent in an HTTP header (control characters or non-UTF-8); check that it holds only the key"
    )]
    Invalid { origin: String },
}

/// Where the key came from, for messages and `check-config`.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
    /// Given in code (the simulator demo, tests).
    Inline,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "{KEY_ENV}"),
            KeySource::File(p) => write!(f, "{KEY_FILE_ENV}={}", p.display()),
            KeySource::Inline => write!(f, "built-in"),
        }
    }
}

/// The API key. `Debug` and `Display` print only the fingerprint; the only way to the bytes is
/// [`ApiKey::header_value`], a header value already marked sensitive.
#[derive(Clone)]
pub struct ApiKey {
    header: HeaderValue,
    fingerprint: String,
    source: KeySource,
}

impl ApiKey {
    /// Builds a key from its text; surrounding whitespace is trimmed.
    pub fn new(raw: &str, source: KeySource) -> Result<Self, KeyError> {
        let origin = source.to_string();
        let key = raw.trim();
        if key.is_empty() {
            return Err(KeyError::Empty { origin });
        }
        let mut header = HeaderValue::from_str(key).map_err(|_| KeyError::Invalid {
            origin: origin.clone(),
        })?;
        header.set_sensitive(true);
        let digest = Sha256::digest(key.as_bytes());
        let fingerprint = format!("len={} sha256={}", key.len(), &hex::encode(digest)[..8]);
        Ok(Self {
            header,
            fingerprint,
            source,
        })
    }

    /// Loads the key from the environment through `get` (so tests need not touch the process
    /// environment).
    pub fn from_env(get: impl Fn(&str) -> Option<OsString>) -> Result<Self, KeyError> {
        let inline = get(KEY_ENV);
        let file = get(KEY_FILE_ENV).filter(|f| !f.is_empty());
        match (inline, file) {
            (Some(_), Some(_)) => Err(KeyError::Ambiguous),
            (None, None) => Err(KeyError::Missing),
            (Some(v), None) => {
                let v = v.into_string().map_err(|_| KeyError::Invalid {
                    origin: KEY_ENV.into(),
                })?;
                Self::new(&v, KeySource::Env)
            }
            (None, Some(path)) => Self::from_file(PathBuf::from(path)),
        }
    }

    /// Reads the key from a file; the trailing newline and surrounding whitespace are trimmed.
    pub fn from_file(path: PathBuf) -> Result<Self, KeyError> {
        let bytes = std::fs::read(&path).map_err(|source| KeyError::Unreadable {
            path: path.clone(),
            source,
        })?;
        let source = KeySource::File(path);
        let text = String::from_utf8(bytes).map_err(|_| KeyError::Invalid {
            origin: source.to_string(),
        })?;
        Self::new(&text, source)
    }

    /// The `Authorization` header value (the bare key), marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// `len=N sha256=xxxxxxxx`: identifies a key in logs without revealing it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }
}

/// The key in use, swappable while requests run (rotation): a request takes the current key
/// once and keeps it for all its attempts.
pub struct KeyStore {
    current: arc_swap::ArcSwap<ApiKey>,
}

impl KeyStore {
    pub fn new(key: ApiKey) -> Self {
        Self {
            current: arc_swap::ArcSwap::from_pointee(key),
        }
    }

    pub fn current(&self) -> Arc<ApiKey> {
        self.current.load_full()
    }

    /// Puts `key` in place for requests that start from now on.
    pub fn replace(&self, key: ApiKey) {
        self.current.store(Arc::new(key));
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyStore({:?})", self.current.load())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.fingerprint)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: &str = "FAKE1-KEY22-TEST3-00000";

    #[test]
    fn debug_and_display_never_show_the_key() {
        let key = ApiKey::new(FAKE, KeySource::Inline).unwrap();
        for printed in [format!("{key:?}"), format!("{key}"), format!("{key:#?}")] {
            assert!(!printed.contains(FAKE), "{printed}");
            assert!(printed.contains("len=23"), "{printed}");
        }
        assert_eq!(key.header_value().to_str().unwrap(), FAKE);
        assert!(key.header_value().is_sensitive());
    }

    #[test]
    fn env_rules() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(*v))
            }
        };
        assert!(matches!(ApiKey::from_env(env(&[])), Err(KeyError::Missing)));
        assert!(matches!(
            ApiKey::from_env(env(&[(KEY_ENV, "a"), (KEY_FILE_ENV, "/x")])),
            Err(KeyError::Ambiguous)
        ));
        assert!(matches!(
            ApiKey::from_env(env(&[(KEY_ENV, "  \n")])),
            Err(KeyError::Empty { .. })
        ));
        assert!(matches!(
            ApiKey::from_env(env(&[(KEY_ENV, "a\u{7}b")])),
            Err(KeyError::Invalid { .. })
        ));
        let key = ApiKey::from_env(env(&[(KEY_ENV, " k1 ")])).unwrap();
        assert_eq!(key.header_value(), "k1");
    }

    #[test]
    fn key_file_is_trimmed_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("otproxy-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, format!("{FAKE}\n")).unwrap();
        let key = ApiKey::from_file(path.clone()).unwrap();
        assert_eq!(key.header_value(), FAKE);
        std::fs::write(&path, "\n").unwrap();
        let err = ApiKey::from_file(path.clone()).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        let missing = dir.join("missing");
        let err = ApiKey::from_file(missing).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
