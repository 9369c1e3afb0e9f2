//! `workers > 1`: independent event loops share one port with SO_REUSEPORT and together
//! serve every client, counted in one set of statistics.

mod common;

use common::*;
use margay::Model;

#[test]
fn two_workers_share_the_port_and_serve_every_client() {
    let server = TestServer::start_with(Model::Reactor, |config| config.workers(2));
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                for _ in 0..5 {
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
    let status = server.get("/api/status");
    let report: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert!(
        report["requests"].as_u64().unwrap() >= 200,
        "both workers' requests are counted: {report}"
    );
    assert!(report["accepted"].as_u64().unwrap() >= 40, "{report}");
}
