//! The tonic codec of `servicemock.v1.MockService`, which the generated
//! code uses (see `build.rs`): prost encoding, and decoding behind the
//! guard of [`crate::guard::proto`]; it answers INVALID_ARGUMENT, not
//! INTERNAL, for bytes that are not the message. Which walk each message
//! takes each message implements ([`Guarded`], in `pb` and `report::proto`).

use std::marker::PhantomData;

use bytes::Buf;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use crate::guard::proto::{decode_guarded, Guarded};

/// Metadata on a status made by this guard, so a client tells a bad
/// answer it refused from an INVALID_ARGUMENT the other side sent.
pub const REFUSED_BY_GUARD: &str = "x-servicemock-refused-by-guard";

/// The tonic codec of `servicemock.v1.MockService`: prost encoding, and
/// decoding behind [`crate::guard::proto::check_nesting`]. The generated code makes it with
/// `default()`: one message per call for unary messages
/// ([`Guarded::ONE_PER_CALL`]); a client reading a stream of answers
/// (CallStream, Converse) makes it with [`GuardedCodec::streaming`].
#[derive(Debug, Clone)]
pub struct GuardedCodec<T, U> {
    one_per_call: bool,
    _messages: PhantomData<(T, U)>,
}

impl<T, U: Guarded> Default for GuardedCodec<T, U> {
    fn default() -> Self {
        GuardedCodec {
            one_per_call: U::ONE_PER_CALL,
            _messages: PhantomData,
        }
    }
}

impl<T, U> GuardedCodec<T, U> {
    /// The same guard, any number of messages.
    pub fn streaming() -> Self {
        GuardedCodec {
            one_per_call: false,
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for GuardedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Guarded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = GuardedEncoder<T>;
    type Decoder = GuardedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        GuardedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        GuardedDecoder {
            decoded: false,
            one_per_call: self.one_per_call,
            _message: PhantomData,
        }
    }
}

/// Encodes with prost.
#[derive(Debug)]
pub struct GuardedEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for GuardedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the message: {e}")))
    }
}

/// Checks the nesting, then decodes with prost. `Call` is unary both ways,
/// so a second message on one call is refused, not silently ignored (a
/// `Converse` stream's messages, of their own type, are many).
#[derive(Debug)]
pub struct GuardedDecoder<U> {
    decoded: bool,
    one_per_call: bool,
    _message: PhantomData<U>,
}

impl<U: Guarded> Decoder for GuardedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        if self.decoded && self.one_per_call {
            return Err(refused(
                "a unary call carries one message; a second one came",
            ));
        }
        self.decoded = true;
        let bytes = buf.copy_to_bytes(buf.remaining());
        decode_guarded(&bytes)
            .map(Some)
            .map_err(|e| refused(&e.to_string()))
    }
}

/// INVALID_ARGUMENT marked as made here ([`REFUSED_BY_GUARD`]).
fn refused(message: &str) -> Status {
    let mut marker = tonic::metadata::MetadataMap::new();
    marker.insert(
        REFUSED_BY_GUARD,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    Status::with_metadata(tonic::Code::InvalidArgument, message, marker)
}
