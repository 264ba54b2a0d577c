//! Fuzzes the wire decoder with every kind of node: with and without a
//! cluster key, each body format. Whatever the bytes, decoding must not
//! panic, and whatever decodes must re-encode to a datagram that decodes to
//! the same payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use twopc_node::runtime::wire::{ClusterKey, Codec, Format};

fn codecs() -> &'static [Codec; 3] {
    static CODECS: OnceLock<[Codec; 3]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let key = ClusterKey::new(&"f0".repeat(32)).unwrap();
        [
            Codec::new(None, Format::Bincode),
            Codec::new(None, Format::Json),
            Codec::new(Some(key), Format::Bincode),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for codec in codecs() {
        if let Ok(payload) = codec.decode(data) {
            let again = codec.encode(&payload).expect("a decoded payload encodes");
            assert_eq!(codec.decode(&again).as_ref(), Ok(&payload));
        }
    }
});
