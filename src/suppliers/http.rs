//! What both HTTP adapters share: the client and how transport failures and supplier messages
//! are turned into safe, normalised errors.

use std::time::Duration;

use super::SupplierError;

/// The longest supplier message passed on in a `Rejected` error.
const MAX_MESSAGE_CHARS: usize = 200;

/// The client both adapters use: no redirects, the timeout for connecting and for the whole call.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a default TLS provider and an adapter may be built before the
    // application installs one (CLI, tests); installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
}

/// reqwest's own messages name the URL; a fixed description keeps the error short and stable.
pub(crate) fn transport_error(error: reqwest::Error) -> SupplierError {
    if error.is_timeout() {
        return SupplierError::TimedOut;
    }
    let what = if error.is_connect() {
        "could not connect"
    } else if error.is_builder() {
        "the request could not be built"
    } else {
        "the connection failed"
    };
    SupplierError::Unavailable(what.to_owned())
}

/// A reply's body, refused once it grows past `max` bytes (whatever its `Content-Length` says),
/// so an oversized answer never fills the gateway's memory.
pub(crate) async fn body_within(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, SupplierError> {
    let too_large = || SupplierError::Rejected {
        code: "REPLY_TOO_LARGE".to_owned(),
        message: format!("the supplier's reply is larger than {max} bytes"),
    };
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reply that is not in the supplier's format.
pub(crate) fn unreadable(what: &str) -> SupplierError {
    SupplierError::Rejected {
        code: "INVALID_REPLY".to_owned(),
        message: format!("the supplier's {what} could not be read"),
    }
}

/// Supplier messages end up in Task output: keep them short and mask anything that looks like an
/// NHS number (ten digits, perhaps spaced) in case the supplier echoes one back.
pub(crate) fn scrub(message: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let mut digits = 0;
    for c in message.chars() {
        if c.is_ascii_digit() || (c == ' ' && digits > 0) {
            digits += usize::from(c.is_ascii_digit());
            run.push(c);
            continue;
        }
        flush_digits(&mut out, &mut run, &mut digits);
        out.push(c);
    }
    flush_digits(&mut out, &mut run, &mut digits);
    // Masked before cutting, so a number straddling the cut is not left half visible; line
    // breaks and other control characters become spaces so a message cannot forge log lines.
    out.chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn flush_digits(out: &mut String, run: &mut String, digits: &mut usize) {
    let trailing_spaces = run.len() - run.trim_end().len();
    if *digits >= 10 {
        out.push_str("[redacted]");
        out.extend(std::iter::repeat_n(' ', trailing_spaces));
    } else {
        out.push_str(run);
    }
    run.clear();
    *digits = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_in_supplier_messages_are_masked() {
        assert_eq!(scrub("patient 9434765919 exists"), "patient [redacted] exists");
        assert_eq!(scrub("patient 943 476 5919 exists"), "patient [redacted] exists");
        assert_eq!(scrub("code 1110 at 12:30"), "code 1110 at 12:30");
        assert_eq!(scrub(&"x".repeat(500)).len(), MAX_MESSAGE_CHARS);
        let straddling = format!("{}9434765919", "x".repeat(MAX_MESSAGE_CHARS - 4));
        assert!(scrub(&straddling).ends_with("xxxx[red"));
        assert_eq!(
            scrub("line one\r\nforged: entry\u{1b}[2J"),
            "line one  forged: entry [2J"
        );
    }
}
