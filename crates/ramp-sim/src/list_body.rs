//! The body of a JSON LIST response, written piece by piece.
//!
//! Each item's JSON is cached in the store ([`crate::store::ObjectList::item_json`]), so a LIST
//! needs no serialization; this body copies those bytes into chunks of about [`CHUNK`] bytes
//! as the connection takes them, instead of assembling the whole response (12 MiB for 10,000
//! Deployments) in one buffer first. The server's memory per LIST stays at one chunk, the first
//! bytes leave at once, and the length is known up front (`Content-Length`, not chunked).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

/// Target size of one chunk.
pub const CHUNK: usize = 64 * 1024;

/// `prefix`, then the items separated by commas, then `suffix`.
#[derive(Debug)]
pub struct ListBody {
    prefix: Option<Bytes>,
    items: std::vec::IntoIter<Bytes>,
    first_item: bool,
    suffix: Option<Bytes>,
    remaining: u64,
}

impl ListBody {
    /// A body of `prefix`, `items` joined by `,`, and `suffix`.
    pub fn new(prefix: Bytes, items: Vec<Bytes>, suffix: Bytes) -> Self {
        let commas = items.len().saturating_sub(1);
        let len =
            prefix.len() + items.iter().map(Bytes::len).sum::<usize>() + commas + suffix.len();
        Self {
            prefix: Some(prefix),
            items: items.into_iter(),
            first_item: true,
            suffix: Some(suffix),
            remaining: len as u64,
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        let mut chunk = BytesMut::with_capacity(CHUNK + 1024);
        if let Some(p) = self.prefix.take() {
            chunk.extend_from_slice(&p);
        }
        while chunk.len() < CHUNK {
            let Some(item) = self.items.next() else {
                if let Some(s) = self.suffix.take() {
                    chunk.extend_from_slice(&s);
                }
                break;
            };
            if !self.first_item {
                chunk.extend_from_slice(b",");
            }
            self.first_item = false;
            chunk.extend_from_slice(&item);
        }
        if chunk.is_empty() {
            return None;
        }
        self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        Some(chunk.freeze())
    }
}

impl http_body::Body for ListBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().next_chunk().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.suffix.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn joins_the_items_in_chunks_of_the_announced_length() {
        for n in [0usize, 1, 2, 500] {
            let items: Vec<Bytes> = (0..n)
                .map(|i| Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(300))))
                .collect();
            let want = format!(
                "{{\"items\":[{}]}}",
                items
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let mut body = ListBody::new(
                Bytes::from_static(b"{\"items\":["),
                items,
                Bytes::from_static(b"]}"),
            );
            assert_eq!(
                body.size_hint().exact(),
                Some(want.len() as u64),
                "{n} items"
            );
            let mut got = Vec::new();
            let mut chunks = 0;
            while let Some(frame) = body.frame().await {
                let data = frame.unwrap().into_data().unwrap();
                assert!(data.len() <= CHUNK + 1024, "a chunk stays small");
                got.extend_from_slice(&data);
                chunks += 1;
            }
            assert!(body.is_end_stream());
            assert_eq!(String::from_utf8(got).unwrap(), want, "{n} items");
            let v: serde_json::Value = serde_json::from_str(&want).unwrap();
            assert_eq!(v["items"].as_array().unwrap().len(), n);
            if n == 500 {
                assert!(chunks > 1, "large lists go out in several chunks");
            }
        }
    }
}
