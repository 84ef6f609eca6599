//! Identifiers minted on every request (request ids, audit event ids). They come from the
//! thread's cryptographically secure generator, seeded from the operating system: `uuid`'s own
//! generators ask the kernel for every identifier, a system call per request.

/// A time-ordered (version 7) UUID for something made at `at`: its milliseconds since the
/// epoch, then random bits.
pub fn time_ordered(at: chrono::NaiveDateTime) -> uuid::Uuid {
    let millis = u64::try_from(at.and_utc().timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_their_version_and_differ() {
        let at = chrono::DateTime::from_timestamp_millis(1_796_198_400_123)
            .unwrap()
            .naive_utc();
        let t = time_ordered(at);
        assert_eq!(t.get_version_num(), 7);
        assert_eq!(t.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = t.get_timestamp().expect("a v7 id carries its time").to_unix();
        assert_eq!((secs, nanos / 1_000_000), (1_796_198_400, 123));
        assert_ne!(t, time_ordered(at));
        let later = time_ordered(at + chrono::Duration::milliseconds(1));
        assert!(later > t, "ids made later sort later");
    }
}
