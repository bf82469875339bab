//! Secrets: random tokens from the OS, Argon2id password hashes, SHA-256 digests of API tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use sha2::Digest;

/// `n` random bytes from the operating system.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not something a server can work around.
    getrandom::fill(&mut bytes).expect("the operating system's random generator");
    bytes
}

/// A random URL-safe token carrying 256 bits (session ids, CSRF tokens, API token bodies).
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A short random identifier (API token ids): 48 bits as hex.
pub fn random_id() -> String {
    random_bytes::<6>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A one-time password a person can type: 16 characters with no look-alikes (0/O, 1/l/I).
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    // 32 symbols: 5 bits each, 80 bits in all; the modulo is exact (256 = 8 × 32).
    random_bytes::<16>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A fresh 16-byte salt.
pub fn random_salt() -> [u8; 16] {
    random_bytes::<16>()
}

/// Hashes a password with Argon2id (the crate's defaults: 19 MiB, 2 passes, one lane, as
/// OWASP recommends) into a PHC string that carries its salt and parameters. For the
/// command line and the first start; the server hashes through `hasher` (bounded memory).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes make a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters accepts any password")
        .to_string()
}

/// Whether `password` matches a PHC hash made by `hash_password` (false for a damaged hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// The stored form of an API token: its SHA-256, hex. Tokens carry 256 random bits, so a
/// fast hash is enough; the file never holds a usable token.
pub fn token_digest(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash, hash_password("correct horse"));
    }

    #[test]
    fn tokens_are_random_and_digests_are_sha256() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
        // FIPS 180-2 test vector.
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let otp = one_time_password();
        assert_eq!(otp.len(), 16);
        assert!(!otp.contains(['0', 'o', '1', 'l']));
        assert!(equal("abc", "abc") && !equal("abc", "abd") && !equal("abc", "ab"));
    }
}
