//! Reading a response body with a size bound.

/// Why a bounded body read stopped.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit was sent (or announced).
    TooLarge,
    /// The transfer failed (or timed out).
    Transfer(reqwest::Error),
}

/// Reads the whole body of `resp`, refusing more than `limit` bytes before
/// allocating for them (a hostile server must not blow our memory).
pub(crate) async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let announced = resp.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    // `announced <= limit` here, so the cast cannot truncate.
    let mut buf = Vec::with_capacity(announced as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transfer)? {
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}
