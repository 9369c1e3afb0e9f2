//! Proves large-file delivery: a 10 MiB file arrives byte for byte, clients that vanish or
//! stall mid-download harm nobody else, and many concurrent downloads all complete.

#[macro_use]
mod common;

use common::*;
use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

fn assert_big(resp: &Resp) {
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), Some(BIG_LEN as u64));
    assert_eq!(resp.body.len(), BIG_LEN);
    if let Some(i) = resp.body.iter().zip(big_bin()).position(|(a, b)| a != b) {
        panic!("big.bin differs first at byte {i}");
    }
}

both_models!(big_file_arrives_byte_for_byte, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    send(&mut stream, &get_req("/big.bin"));
    let resp = read_response(&mut stream, false);
    assert_standard_headers(&resp, false);
    assert_big(&resp);
    assert_still_serves(&mut stream);
});

both_models!(big_file_then_pipelined_small_file, |model| {
    let server = TestServer::start(model);
    let mut stream = server.connect();
    let mut raw = get_req("/big.bin");
    raw.extend_from_slice(&get_req("/app.js"));
    raw.extend_from_slice(&get_req("/big.bin"));
    send(&mut stream, &raw);
    assert_big(&read_response(&mut stream, false));
    let small = read_response(&mut stream, false);
    assert_eq!(small.body, APP_JS.as_bytes());
    assert_big(&read_response(&mut stream, false));
});

both_models!(client_abandoning_download_does_not_hurt_the_next, |model| {
    let server = TestServer::start(model);
    for round in 0..5 {
        let mut stream = server.connect();
        send(&mut stream, &get_req("/big.bin"));
        let mut got = vec![0u8; 100 * 1024];
        stream
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        drop(stream);
    }
    let resp = server.get("/big.bin");
    assert_big(&resp);
});

both_models!(stalled_download_does_not_block_others, |model| {
    let server = TestServer::start(model);
    let mut stalled = server.connect();
    send(&mut stalled, &get_req("/big.bin"));
    // Let the server fill the socket buffers of the client that is not reading.
    thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    for _ in 0..5 {
        let resp = server.get("/style.css");
        assert_eq!(resp.body, STYLE_CSS.as_bytes());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "other clients waited on a stalled one"
    );

    // The stalled client still gets every byte once it reads.
    assert_big(&read_response(&mut stalled, false));
});

both_models!(twenty_concurrent_downloads_complete, |model| {
    let server = TestServer::start(model);
    let addr = server.addr();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            thread::spawn(move || {
                let mut stream = connect(addr);
                send(&mut stream, &get_req("/big.bin"));
                let resp = try_read_response(&mut stream, false)
                    .unwrap_or_else(|e| panic!("client {i}: {e}"));
                assert_eq!(resp.status, 200, "client {i}");
                assert!(resp.body == big_bin(), "client {i}: body differs");
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        client
            .join()
            .unwrap_or_else(|_| panic!("client {i} failed"));
    }
});
