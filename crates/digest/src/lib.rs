//! SHA-256 for the bytes berth verifies in bulk: blobs as they download (berth-pull) and
//! uncompressed layer streams against their diff_id (berth-unpack).
//!
//! Hashing is most of the CPU time of both tools, so the implementation is chosen for speed:
//! OpenSSL's libcrypto (the system library, linked dynamically; no TLS from it: berth's TLS
//! stays rustls with ring). On CPUs without the SHA extensions its AVX2+BMI2 assembly is
//! ~20% faster than ring's, which has only an AVX path for SHA-256 (measured here:
//! 235–270 MB/s against 195–214 MB/s per core, see docs/content-store.md). With the SHA
//! extensions both run at the same ~1.5 GB/s.
//!
//! ```
//! let mut h = berth_digest::Sha256::new();
//! h.update(b"hello ");
//! h.update(b"world");
//! assert_eq!(
//!     berth_digest::hex(&h.finish()),
//!     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
//! );
//! ```
#![forbid(unsafe_code)]

/// An incremental SHA-256.
#[derive(Clone)]
pub struct Sha256(openssl::sha::Sha256);

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256(openssl::sha::Sha256::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything given to [`Sha256::update`].
    pub fn finish(self) -> [u8; 32] {
        self.0.finish()
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ring_on_every_split_of_the_input() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let want = ring::digest::digest(&ring::digest::SHA256, &data);
        for split in [0, 1, 63, 64, 65, 4096, 100_001, data.len()] {
            let mut h = Sha256::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(&h.finish()[..], want.as_ref(), "split at {split}");
        }
    }

    #[test]
    fn the_empty_input_has_the_known_digest() {
        assert_eq!(
            hex(&Sha256::new().finish()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
