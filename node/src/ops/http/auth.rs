//! Bearer-token authentication for the HTTP API: the token file, and the
//! check every request passes before anything else reads it.

use super::ApiError;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use std::path::Path;
use std::sync::Arc;

/// The API's bearer token: exactly 64 hexadecimal characters (32 bytes, as
/// `twopc keygen` prints them), the same format as a cluster key file. Use
/// a token of its own, not the cluster key: whoever holds the cluster key
/// can forge protocol messages, while the token only lets one make
/// purchases through the API and read metrics.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)") // never in a log
    }
}

impl Token {
    /// A token from a file's text, or why it is not one (without quoting
    /// the text: it may be a secret). A trailing newline is fine; anything
    /// else (a comment, a second line, spaces inside) is refused.
    pub fn new(text: &str) -> Result<Token, String> {
        const EXPECTED: &str = "an HTTP token is exactly 64 hexadecimal characters \
            (32 bytes, as `twopc keygen` prints them) and nothing else";
        let token = text.strip_suffix('\n').unwrap_or(text);
        let token = token.strip_suffix('\r').unwrap_or(token);
        if token.lines().nth(1).is_some() || token.contains('\n') {
            return Err(format!("{EXPECTED}; got more than one line"));
        }
        if let Some((at, _)) = token.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "{EXPECTED}; got a character that is not a hexadecimal digit at byte {at}"
            ));
        }
        if token.len() != 64 {
            return Err(format!("{EXPECTED}; got {} characters", token.len()));
        }
        Ok(Token(token.to_ascii_lowercase().into()))
    }

    /// Reads the token file at `path`.
    pub fn load(path: &Path) -> Result<Token, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read HTTP token file {}: {e}", path.display()))?;
        Token::new(&text).map_err(|e| {
            format!(
                "HTTP token file {}: {e}; make one with `twopc keygen > FILE`",
                path.display()
            )
        })
    }

    /// Whether `header` (the `Authorization` value) carries this token,
    /// under the scheme `Bearer` in any case (`bearer`, `BEARER`: HTTP
    /// schemes are case-insensitive, RFC 9110 section 11.1). Compared in
    /// constant time: how long a refusal takes tells nothing about how much
    /// of a guess was right.
    pub fn admits(&self, header: Option<&str>) -> bool {
        let Some((scheme, given)) = header.and_then(|h| h.trim_start().split_once(' ')) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let given = given.trim().to_ascii_lowercase();
        if given.len() != self.0.len() {
            return false;
        }
        let diff = given
            .bytes()
            .zip(self.0.bytes())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        diff == 0
    }
}

/// Refuses a request without the token with `401 unauthorized`, before any
/// handler (or body) is read.
pub async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token.admits(header) {
        next.run(request).await
    } else {
        axum::response::IntoResponse::into_response(ApiError::unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn the_token_format_is_the_cluster_key_format() {
        assert!(Token::new(HEX).is_ok());
        assert!(Token::new(&format!("{HEX}\n")).is_ok());
        for bad in [
            String::new(),
            HEX[..63].to_string(),
            format!("{HEX}0"),
            format!("{HEX}\n# a comment\n"),
            format!(" {HEX}"),
            HEX.replace('a', "g"),
            "0123456789abcdef".to_string(),
        ] {
            let err = Token::new(&bad).expect_err(&bad);
            assert!(err.contains("64 hexadecimal"), "{err}");
            assert!(!err.contains(HEX), "the text is never quoted");
        }
    }

    #[test]
    fn only_the_bearer_token_is_admitted() {
        let t = Token::new(HEX).unwrap();
        assert!(t.admits(Some(&format!("Bearer {HEX}"))));
        assert!(t.admits(Some(&format!("Bearer {}", HEX.to_uppercase()))));
        assert!(!t.admits(None));
        assert!(!t.admits(Some(HEX)));
        assert!(!t.admits(Some(&format!("Basic {HEX}"))));
        assert!(!t.admits(Some(&format!("Bearer {}", &HEX[..63]))));
        assert!(!t.admits(Some(&format!("Bearer {}1", &HEX[..63]))));
    }

    /// HTTP's auth schemes are case-insensitive: `bearer` was refused.
    #[test]
    fn the_scheme_is_case_insensitive() {
        let t = Token::new(HEX).unwrap();
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            assert!(t.admits(Some(&format!("{scheme} {HEX}"))), "{scheme}");
        }
        assert!(
            t.admits(Some(&format!("Bearer   {HEX}"))),
            "spaces after it"
        );
        assert!(!t.admits(Some(&format!("Bearers {HEX}"))));
        assert!(!t.admits(Some(&format!("Bearer{HEX}"))));
        assert!(!t.admits(Some("bearer")));
    }
}
