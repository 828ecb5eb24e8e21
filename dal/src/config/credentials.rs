//! The password of a configuration: kept out of `Debug`, and told apart from other passwords
//! only through a keyed digest ([`CredentialTag`]) that never leaves the process.

use std::fmt;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A password that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(pub(super) Option<String>);

impl Secret {
    pub(crate) fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("\"***\""),
            None => f.write_str("None"),
        }
    }
}

/// Which credentials a configuration carries, as a keyed digest: HMAC-SHA256 of the password
/// under a random key drawn once per process and held only in memory. Pools are keyed by the
/// configuration [`hash`](super::DatabaseConfig::hash) *and* this tag, so two configurations that
/// differ only in their password never share connections. The tag never prints (its `Debug`
/// shows nothing of it), is never logged or exported, and means nothing outside this process.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CredentialTag(pub(super) [u8; 32]);

impl fmt::Debug for CredentialTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialTag(..)")
    }
}

/// The per-process HMAC key: 256 bits from two v4 UUIDs (244 random bits from `uuid`'s
/// OS-seeded CSPRNG, already a dependency), drawn on first use, never stored elsewhere.
pub(super) fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key
    })
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`, fed to the hash piece by
/// piece so the password is never copied into a buffer of ours.
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // Test case 1: 20-byte key.
        assert_eq!(
            hex(hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2, message fed in two parts.
        assert_eq!(
            hex(hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
