//! HTTP response handling, as a node's descriptor refresh, `betanet send`
//! and `betanet audit` run it on whatever a peer's `http_addr` answers: the
//! input is served as the raw response to the client's `GET /descriptor`
//! (in memory, with the caps of a descriptor fetch). Any response must end
//! in a response or an error, quickly, never in a panic or a hang; an
//! accepted body never exceeds the cap.

#![no_main]

use betanet::topology::MAX_DESCRIPTOR_BYTES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = betanet::http::client::fuzz_response(data) {
        assert!(response.body.len() <= MAX_DESCRIPTOR_BYTES);
    }
});
