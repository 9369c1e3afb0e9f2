//! `workers > 1`: independent event loops share one port with SO_REUSEPORT and together
//! serve every client, counted in one set of statistics.

mod common;

use common::*;
use margay::Model;

#[test]
fn two_workers_share_the_port_and_serve_every_client() {
    // Separate connections, each from its own source port: the kernel spreads them over the
    // listeners by a hash of the addresses, so with 64 both workers get some (all on one
    // worker would happen about twice in 2^64 runs).
    const CLIENTS: u64 = 64;
    const REQUESTS: u64 = 5;
    let server = TestServer::builder(Model::Reactor)
        .config(|config| config.workers(2))
        .start();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                for _ in 0..REQUESTS {
                    send(&mut stream, &get_req("/style.css"));
                    let resp = read_response(&mut stream, false);
                    assert_eq!(resp.status, 200);
                    assert_eq!(resp.body, STYLE_CSS.as_bytes());
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }

    // The status report is made before its own response is counted.
    let report = server.status();
    let requests = report["requests"].as_u64().unwrap();
    assert_eq!(
        requests,
        CLIENTS * REQUESTS,
        "both workers' requests are counted: {report}"
    );
    // Every client's connection, and the one asking now.
    assert_eq!(
        report["accepted"].as_u64().unwrap(),
        CLIENTS + 1,
        "{report}"
    );
    let per_worker: Vec<u64> = report["requests_per_worker"]
        .as_array()
        .expect("requests_per_worker is an array")
        .iter()
        .map(|n| n.as_u64().expect("a count"))
        .collect();
    assert_eq!(per_worker.len(), 2, "one count per worker: {report}");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "each worker served some of the {CLIENTS} connections: {per_worker:?}"
    );
    assert_eq!(
        per_worker.iter().sum::<u64>(),
        requests,
        "the workers' counts add up to every response: {report}"
    );
}
