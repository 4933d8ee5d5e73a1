use std::time::{Duration, Instant};
#[tokio::test(flavor = "multi_thread")]
async fn probe() {
    let t0 = Instant::now();
    let r = troupe::Server::connect("tcp/127.0.0.1:1", Duration::from_secs(2)).await;
    eprintln!("{:?} {:?}", t0.elapsed(), r.unwrap_err().to_string());
    let t0 = Instant::now();
    let r = troupe::Session::open("tcp/127.0.0.1:1", troupe::SessionOptions{mode: troupe::Mode::Peer, timeout: Duration::from_secs(1), ..Default::default()}).await;
    eprintln!("{:?} {:?}", t0.elapsed(), r.unwrap_err().to_string());
}
