//! Content digests: `blake3:<64 lowercase hex>`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CacheError, Result};

/// Prefix of every digest string; names the hash so a future change of hash is visible in data.
pub const DIGEST_PREFIX: &str = "blake3:";

const HEX_LEN: usize = 64;

/// The name of a blob: `blake3:` followed by 64 lowercase hex characters.
///
/// Serialises as the plain string. Deserialising validates it, so a `Digest` read from JSON can
/// always be turned into a path under `objects/` safely.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Digest of a byte slice.
    pub fn of_bytes(b: &[u8]) -> Digest {
        Digest::from_hash(&blake3::hash(b))
    }

    /// Digest from a finished blake3 hash (e.g. a streaming `blake3::Hasher`).
    pub fn from_hash(h: &blake3::Hash) -> Digest {
        Digest(format!("{DIGEST_PREFIX}{}", h.to_hex()))
    }

    /// Parses `blake3:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let invalid = |reason| CacheError::InvalidDigest {
            value: s.to_owned(),
            reason,
        };
        let hex = s
            .strip_prefix(DIGEST_PREFIX)
            .ok_or_else(|| invalid("it does not start with `blake3:`"))?;
        if hex.len() != HEX_LEN {
            return Err(invalid("expected 64 hex characters after `blake3:`"));
        }
        if !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("expected lowercase hex characters after `blake3:`"));
        }
        Ok(Digest(s.to_owned()))
    }

    /// The whole string, `blake3:...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex characters without the prefix.
    pub fn hex(&self) -> &str {
        &self.0[DIGEST_PREFIX.len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = CacheError;

    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_bytes_is_prefixed_lowercase_hex() {
        let d = Digest::of_bytes(b"hello");
        assert!(d.as_str().starts_with(DIGEST_PREFIX));
        assert_eq!(d.hex().len(), 64);
        assert_eq!(d.hex(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(d.to_string(), d.as_str());
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
    }

    #[test]
    fn digest_parse_rejects_malformed_strings() {
        let good = Digest::of_bytes(b"x");
        for bad in [
            "".to_owned(),
            good.hex().to_owned(),
            format!("sha256:{}", good.hex()),
            format!("{DIGEST_PREFIX}{}", &good.hex()[..63]),
            format!("{DIGEST_PREFIX}{}", good.hex().to_uppercase()),
            format!("{DIGEST_PREFIX}../../../../etc/passwd{}", &good.hex()[..44]),
        ] {
            let err = Digest::parse(&bad).unwrap_err();
            assert!(
                matches!(err, CacheError::InvalidDigest { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn digest_serde_is_a_plain_validated_string() {
        let d = Digest::of_bytes(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"blake3:zz\"").is_err());
    }
}
