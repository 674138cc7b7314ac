//! Shared-secret authentication: a mutual HMAC-SHA256 challenge-response.
//! The token never crosses the wire, in clear or otherwise.
//!
//! ```text
//! producer → HELLO   server nonce Ns (32 random bytes)
//! consumer → JOIN    client nonce Nc, response = HMAC(token, "streamkit-wire/1 join"    ‖ Ns ‖ Nc)
//! producer → WELCOME proof          = HMAC(token, "streamkit-wire/1 welcome" ‖ Nc ‖ Ns)
//! ```
//!
//! The producer checks the response (constant-time) before it sends a single
//! frame; the consumer checks the proof, so it cannot be fed frames by an
//! impostor that does not know the token. Fresh nonces on both sides make a
//! recorded exchange useless for a replay.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use streamkit_core::{Error, Result};

use crate::wire::NONCE_LEN;

const JOIN_LABEL: &[u8] = b"streamkit-wire/1 join";
const WELCOME_LABEL: &[u8] = b"streamkit-wire/1 welcome";

/// A shared secret. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<[u8]>);

impl Token {
    /// A token from its text (at least one byte).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Token> {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(Error::invalid("an empty token would protect nothing; give a secret or leave token= out"));
        }
        Ok(Token(Arc::from(secret)))
    }

    /// A token read from a file (trailing newlines dropped), so that the secret
    /// stays out of the command line and `ps`.
    pub fn from_file(path: &str) -> Result<Token> {
        let text = std::fs::read(path).map_err(|e| Error::io(format!("reading the token file {path}"), e))?;
        let end = text.iter().rposition(|b| !matches!(b, b'\n' | b'\r')).map_or(0, |i| i + 1);
        Token::new(&text[..end])
    }

    /// The consumer's JOIN response to the producer's nonce.
    pub fn join_response(&self, server_nonce: &[u8; NONCE_LEN], client_nonce: &[u8; NONCE_LEN]) -> [u8; NONCE_LEN] {
        self.mac(JOIN_LABEL, server_nonce, client_nonce).finalize().into_bytes().into()
    }

    /// Checks a JOIN response in constant time.
    pub fn verify_join(
        &self,
        server_nonce: &[u8; NONCE_LEN],
        client_nonce: &[u8; NONCE_LEN],
        response: &[u8; NONCE_LEN],
    ) -> bool {
        self.mac(JOIN_LABEL, server_nonce, client_nonce).verify_slice(response).is_ok()
    }

    /// The producer's WELCOME proof for the consumer's nonce.
    pub fn welcome_proof(&self, client_nonce: &[u8; NONCE_LEN], server_nonce: &[u8; NONCE_LEN]) -> [u8; NONCE_LEN] {
        self.mac(WELCOME_LABEL, client_nonce, server_nonce).finalize().into_bytes().into()
    }

    /// Checks a WELCOME proof in constant time.
    pub fn verify_welcome(
        &self,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        proof: &[u8; NONCE_LEN],
    ) -> bool {
        self.mac(WELCOME_LABEL, client_nonce, server_nonce).verify_slice(proof).is_ok()
    }

    fn mac(&self, label: &[u8], a: &[u8], b: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(label);
        mac.update(a);
        mac.update(b);
        mac
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes, redacted>)", self.0.len())
    }
}

/// 32 bytes from the kernel's random number generator.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    let mut filled = 0;
    while filled < NONCE_LEN {
        // SAFETY: the pointer and length describe the unfilled tail of `nonce`.
        let n = unsafe { libc::getrandom(nonce[filled..].as_mut_ptr().cast(), NONCE_LEN - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // getrandom(2) exists since Linux 3.17; without it, the device file.
            use std::io::Read;
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut nonce))
                .expect("no source of randomness for authentication nonces");
            return nonce;
        }
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_verify_only_with_the_same_token_and_nonces() {
        let token = Token::new("s3cret").unwrap();
        let (ns, nc) = (random_nonce(), random_nonce());
        assert_ne!(ns, nc, "nonces are random");
        let response = token.join_response(&ns, &nc);
        assert!(token.verify_join(&ns, &nc, &response));
        assert!(!Token::new("s3cret!").unwrap().verify_join(&ns, &nc, &response));
        assert!(!token.verify_join(&nc, &ns, &response), "nonces are bound in order");
        let proof = token.welcome_proof(&nc, &ns);
        assert_ne!(proof, response, "the two directions use different labels");
        assert!(token.verify_welcome(&nc, &ns, &proof));
        assert!(!token.verify_welcome(&nc, &ns, &response));
    }

    #[test]
    fn token_is_redacted_and_not_empty() {
        let token = Token::new("hunter2").unwrap();
        assert_eq!(format!("{token:?}"), "Token(<7 bytes, redacted>)");
        assert!(Token::new("").unwrap_err().to_string().contains("empty token"));
    }
}
