//! The TCP transport over loopback: framing, the listener feeding a real
//! pipeline, its timeouts and connection cap, and the egress queues.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use betanet::NodeRole;
use betanet::keys::NodeKeys;
use betanet::pipeline::{BufferPool, DropCause, PacketBuf, PacketPipeline};
use betanet::sphinx::geometry::{FRAME_VERSION, KIND_SPHINX};
use betanet::sphinx::{
    DropReason, FRAME_LEN, FinalCommand, MessageId, NodeId, PathHop, create_packet,
};
use betanet::topology::{EgressProtocol, LiveTopology, NodeDescriptor, SphinxKeyEntry, Topology};
use betanet::transport::tcp::{TcpEgress, TcpLimits, TcpServer, TcpStats};
use betanet::transport::{FrameCodec, SourceGate, TcpRefused};
use bytes::BytesMut;
use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

/// Longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(10);

// ---- helpers ------------------------------------------------------------

/// Short timeouts so the tests are quick; generous caps otherwise.
fn limits() -> TcpLimits {
    TcpLimits {
        read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        max_connections_per_source: 8,
        reconnect_backoff_max: Duration::from_millis(200),
        connect_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
        ..TcpLimits::default()
    }
}

/// A topology of three nodes on 10.0.0.x: loopback is not a member.
fn topology() -> Arc<LiveTopology> {
    topology_with_first_at([10, 0, 0, 1])
}

/// Three nodes: the first at `first`, the others on 10.0.0.x.
fn topology_with_first_at(first: [u8; 4]) -> Arc<LiveTopology> {
    let nodes = NodeRole::ALL.iter().zip(1u8..).map(|(role, n)| {
        let keys = NodeKeys::generate(&mut ChaCha20Rng::seed_from_u64(u64::from(n)));
        let ip = if n == 1 { first } else { [10, 0, 0, n] };
        let addr = SocketAddr::from((ip, 9000));
        let sphinx = SphinxKeyEntry {
            epoch: 0,
            public_key: betanet::sphinx::SphinxSecretKey::generate(&mut rand::rng()).public_key(),
        };
        let http = SocketAddr::from((ip, 8080));
        NodeDescriptor::new_signed(&keys, *role, addr, addr, http, vec![sphinx], 86_400).unwrap()
    });
    Arc::new(LiveTopology::new(
        Topology::build(nodes).unwrap(),
        EgressProtocol::Tcp,
    ))
}

/// A gate for `role` without rate limiting.
fn gate(role: NodeRole) -> Arc<SourceGate> {
    Arc::new(SourceGate::new(role, topology(), None))
}

/// A listener feeding `pipeline` through a gate for `role`.
///
/// Its submitter keeps the pipeline's ingress open, and dropping a pipeline
/// waits for that to close: so declare it after the pipeline (it drops
/// first) and [`stop`](Self::stop) it.
struct Server {
    addr: SocketAddr,
    stats: Arc<TcpStats>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start_server(pipeline: &PacketPipeline, role: NodeRole, limits: TcpLimits) -> Server {
    start_server_with(pipeline, gate(role), limits).await
}

async fn start_server_with(
    pipeline: &PacketPipeline,
    gate: Arc<SourceGate>,
    limits: TcpLimits,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = TcpServer::new(gate, pipeline.submitter(), limits);
    let stats = Arc::clone(server.stats());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(listener, shutdown.clone()));
    Server {
        addr,
        stats,
        shutdown,
        task,
    }
}

impl Server {
    /// Shuts the listener down and waits until it has let go.
    async fn stop(&mut self) {
        self.shutdown.cancel();
        bounded(&mut self.task).await.unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that panicked before `stop` must still release the pipeline.
        self.shutdown.cancel();
    }
}

/// Polls `condition` until it holds; panics after [`PATIENCE`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `future`, failing the test if it takes longer than [`PATIENCE`].
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("took too long")
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// True once the peer has closed `stream` (EOF or reset).
async fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A frame whose first four bytes are `i`, the rest a fixed pattern.
fn numbered_frame(i: u32) -> Vec<u8> {
    let mut frame = vec![i as u8; FRAME_LEN];
    frame[..4].copy_from_slice(&i.to_be_bytes());
    frame
}

fn frame_number(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[..4].try_into().unwrap())
}

/// A Sphinx-looking frame (right version and kind) with random contents.
fn garbage_frame() -> Vec<u8> {
    let mut frame = vec![0u8; FRAME_LEN];
    rand::rng().fill(&mut frame[..]);
    frame[0] = FRAME_VERSION;
    frame[1] = KIND_SPHINX;
    frame
}

fn pooled(pool: &Arc<BufferPool>, bytes: &[u8]) -> PacketBuf {
    let mut buf = pool.get();
    buf.fill_from(bytes);
    buf
}

fn sphinx_drops(pipeline: &PacketPipeline) -> u64 {
    let stats = pipeline.stats();
    DropReason::ALL
        .iter()
        .map(|reason| stats.dropped(DropCause::Sphinx(*reason)))
        .sum()
}

/// A test next hop: accepts connections and forwards every frame read.
struct Sink {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

async fn start_sink(addr: SocketAddr, frames: mpsc::UnboundedSender<Vec<u8>>) -> Sink {
    // Explicit SO_REUSEADDR: a restarted sink must get its port back even
    // with the previous connection's socket in TIME_WAIT.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    let listener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut readers = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            readers.spawn(read_frames(stream, frames.clone()));
        }
    });
    Sink { addr, task }
}

impl Sink {
    /// Stops listening and closes every connection.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn read_frames(mut stream: TcpStream, frames: mpsc::UnboundedSender<Vec<u8>>) {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let _ = frames.send(frame.to_vec());
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn receive_numbers(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>, n: usize) -> Vec<u32> {
    let mut numbers = Vec::with_capacity(n);
    while numbers.len() < n {
        let frame = bounded(rx.recv()).await.expect("sink gone");
        numbers.push(frame_number(&frame));
    }
    numbers
}

/// Connects to `to` from 127.0.0.`host` (all of 127/8 is loopback on
/// Linux, so each host is a distinct source on one machine).
async fn connect_from(host: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, host], 0)))
        .unwrap();
    bounded(socket.connect(to)).await.unwrap()
}

/// A loopback address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---- codec --------------------------------------------------------------

#[test]
fn codec_round_trips_across_any_split_of_the_stream() {
    let frames: Vec<Vec<u8>> = (0..5).map(numbered_frame).collect();
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    for frame in &frames {
        codec.encode(&frame[..], &mut wire).unwrap();
    }
    assert_eq!(wire.len(), frames.len() * FRAME_LEN, "no framing overhead");

    for chunk in [
        1,
        7,
        100,
        FRAME_LEN - 1,
        FRAME_LEN,
        FRAME_LEN + 1,
        3 * FRAME_LEN + 5,
    ] {
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                decoded.push(frame.to_vec());
            }
        }
        assert_eq!(decoded, frames, "chunks of {chunk}");
        assert!(buf.is_empty());
    }
}

#[test]
fn decoder_waits_for_a_whole_frame_and_reserves_room_for_it() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(&numbered_frame(9)[..100]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() >= FRAME_LEN, "room for the rest reserved");
    buf.extend_from_slice(&numbered_frame(9)[100..]);
    buf.extend_from_slice(&[1, 2, 3]);
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(frame_number(&frame), 9);
    assert_eq!(&buf[..], &[1, 2, 3], "the next frame's bytes stay buffered");
}

#[test]
fn encoder_refuses_anything_but_one_frame() {
    let mut codec = FrameCodec::new();
    let mut out = BytesMut::new();
    for len in [0, 1, FRAME_LEN - 1, FRAME_LEN + 1] {
        let error = codec.encode(&vec![0u8; len][..], &mut out).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "len {len}");
    }
    let pool = BufferPool::new(2);
    let short = pooled(&pool, &[1, 2, 3]);
    let error = codec.encode(&short, &mut out).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    // Oversized input is marked, not silently cut to a frame.
    let long = pooled(&pool, &vec![0u8; FRAME_LEN + 10]);
    assert!(codec.encode(long, &mut out).is_err());
    assert!(out.is_empty(), "nothing written on refusal");

    codec
        .encode(pooled(&pool, &numbered_frame(1)), &mut out)
        .unwrap();
    assert_eq!(&out[..], &numbered_frame(1)[..]);
}

// ---- listener -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_tcp_reach_the_pipeline() {
    const N: u64 = 50;
    let pipeline = PacketPipeline::new(1);
    let mut server = start_server(&pipeline, NodeRole::Entry, limits()).await;

    // One real packet for this node, delivered to loopback (it is an exit).
    let hop = PathHop {
        id: NodeId::from_bytes([7; 16]),
        public_key: pipeline.public_key(),
    };
    let command = FinalCommand::Deliver {
        destination: "127.0.0.1:7000".parse().unwrap(),
        message_id: MessageId([1; 16]),
    };
    let real = create_packet(&[hop], command, b"hello", &mut rand::rng())
        .unwrap()
        .frame
        .to_vec();

    let mut wire = Vec::new();
    for _ in 0..N {
        wire.extend_from_slice(&garbage_frame());
    }
    wire.extend_from_slice(&real);
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // Odd-sized writes with pauses: frames arrive split across reads.
    for piece in wire.chunks(1000) {
        client.write_all(piece).await.unwrap();
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }

    wait_until("every frame to be processed", || {
        sphinx_drops(&pipeline) == N && pipeline.stats().processed == 1
    })
    .await;
    assert_eq!(pipeline.counters().totals().received_tcp, N + 1);
    assert_eq!(load(&server.stats.accepted), 1);

    // Shutdown closes the connection and ends the server promptly.
    server.stop().await;
    assert!(closed_by_peer(&mut client, PATIENCE).await);
    assert_eq!(load(&server.stats.active_connections), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middle_node_refuses_strangers_at_accept() {
    let pipeline = PacketPipeline::new(1);
    let mut server = start_server(&pipeline, NodeRole::Middle, limits()).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // Closed before a byte is read: the connection never takes a slot.
    assert!(closed_by_peer(&mut client, PATIENCE).await);
    let _ = client.write_all(&garbage_frame()).await;
    assert_eq!(load(&server.stats.unauthorized_connections), 1);
    assert_eq!(load(&server.stats.accepted), 0);
    assert_eq!(pipeline.counters().totals().received_tcp, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_lock_members_out_of_a_middle_node() {
    const N: u64 = 5;
    let pipeline = PacketPipeline::new(1);
    // The topology's first node is 127.0.0.1; 127.0.0.2 and up are not in it.
    let gate = Arc::new(SourceGate::new(
        NodeRole::Middle,
        topology_with_first_at([127, 0, 0, 1]),
        None,
    ));
    let limits = TcpLimits {
        max_connections_per_source: 2,
        max_connections: 4,
        ..limits()
    };
    let mut server = start_server_with(&pipeline, gate, limits).await;
    let stats = Arc::clone(&server.stats);

    // Far more strangers than slots, from many addresses: all closed at
    // accept, and they hold nothing.
    let mut strangers = Vec::new();
    for host in 2..42u8 {
        for _ in 0..2 {
            strangers.push(connect_from(host, server.addr).await);
        }
    }
    wait_until("every stranger refused", || {
        load(&stats.unauthorized_connections) == 80
    })
    .await;
    for stranger in &mut strangers {
        assert!(closed_by_peer(stranger, PATIENCE).await);
    }
    assert_eq!(load(&stats.accepted), 0);

    // The member gets its slots, and its frames reach the pipeline.
    let mut member = connect_from(1, server.addr).await;
    let _second = connect_from(1, server.addr).await;
    for _ in 0..N {
        member.write_all(&garbage_frame()).await.unwrap();
    }
    wait_until("the member's frames", || sphinx_drops(&pipeline) == N).await;
    assert_eq!(load(&stats.accepted), 2);
    assert_eq!(pipeline.stats().dropped(DropCause::UnauthorizedSource), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_at_an_entry_node_leave_the_members_share_free() {
    let pipeline = PacketPipeline::new(1);
    let gate = Arc::new(SourceGate::new(
        NodeRole::Entry,
        topology_with_first_at([127, 0, 0, 1]),
        None,
    ));
    let limits = TcpLimits {
        max_connections: 4,
        reserved_member_connections: 2,
        // Nobody is idle long enough to be evicted in this test.
        stranger_evictable_after: Duration::from_secs(3600),
        ..limits()
    };
    let mut server = start_server_with(&pipeline, gate, limits).await;
    let stats = Arc::clone(&server.stats);

    // Strangers (clients) may connect to an entry node, but only fill the
    // two slots not reserved for members.
    let mut strangers = Vec::new();
    for host in 2..12u8 {
        strangers.push(connect_from(host, server.addr).await);
    }
    wait_until("strangers admitted or refused", || {
        load(&stats.accepted) + load(&stats.rejected_connections) == 10
    })
    .await;
    assert_eq!(load(&stats.accepted), 2);

    let members = [
        connect_from(1, server.addr).await,
        connect_from(1, server.addr).await,
    ];
    wait_until("both members admitted", || load(&stats.accepted) == 4).await;
    let quiet = Duration::from_millis(100);
    for mut member in members {
        assert!(!closed_by_peer(&mut member, quiet).await);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_entry_node_evicts_an_idle_stranger_for_a_new_one() {
    let pipeline = PacketPipeline::new(1);
    let limits = TcpLimits {
        max_connections: 1,
        reserved_member_connections: 0,
        stranger_evictable_after: Duration::from_millis(100),
        ..limits()
    };
    let mut server = start_server(&pipeline, NodeRole::Entry, limits).await;
    let stats = Arc::clone(&server.stats);

    let mut idle = connect_from(2, server.addr).await;
    wait_until("the first accept", || load(&stats.accepted) == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fresh = connect_from(3, server.addr).await;
    wait_until("the eviction", || load(&stats.evicted_connections) == 1).await;
    assert!(closed_by_peer(&mut idle, PATIENCE).await);
    fresh.write_all(&garbage_frame()).await.unwrap();
    wait_until("the new stranger's frame", || sphinx_drops(&pipeline) == 1).await;
    assert_eq!(load(&stats.accepted), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stalling_mid_frame_is_dropped_after_the_read_timeout() {
    let pipeline = PacketPipeline::new(1);
    let timeout = Duration::from_millis(200);
    let limits = TcpLimits {
        read_timeout: timeout,
        ..limits()
    };
    let mut server = start_server(&pipeline, NodeRole::Entry, limits).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    client.write_all(&[FRAME_VERSION; 100]).await.unwrap();
    assert!(closed_by_peer(&mut client, PATIENCE).await);
    assert!(started.elapsed() >= timeout - Duration::from_millis(20));
    assert_eq!(load(&server.stats.read_timeouts), 1);
    assert_eq!(pipeline.counters().totals().received_tcp, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bytes_does_not_extend_the_read_timeout() {
    let pipeline = PacketPipeline::new(1);
    let limits = TcpLimits {
        read_timeout: Duration::from_millis(300),
        ..limits()
    };
    let mut server = start_server(&pipeline, NodeRole::Entry, limits).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    // One byte every 50 ms would take over a minute to finish a frame.
    let closed = loop {
        if client.write_all(&[0]).await.is_err()
            || closed_by_peer(&mut client, Duration::from_millis(50)).await
        {
            break started.elapsed();
        }
        assert!(started.elapsed() < PATIENCE, "never dropped");
    };
    assert!(closed < Duration::from_secs(2), "dropped after {closed:?}");
    assert_eq!(load(&server.stats.read_timeouts), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let pipeline = PacketPipeline::new(1);
    let limits = TcpLimits {
        idle_timeout: Duration::from_millis(200),
        ..limits()
    };
    let mut server = start_server(&pipeline, NodeRole::Entry, limits).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // A whole frame first: idleness counts from the last byte.
    client.write_all(&garbage_frame()).await.unwrap();
    assert!(closed_by_peer(&mut client, PATIENCE).await);
    assert_eq!(load(&server.stats.idle_timeouts), 1);
    assert_eq!(load(&server.stats.read_timeouts), 0);
    assert_eq!(pipeline.counters().totals().received_tcp, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_source_cap_are_closed() {
    let pipeline = PacketPipeline::new(1);
    let limits = TcpLimits {
        max_connections_per_source: 2,
        ..limits()
    };
    let mut server = start_server(&pipeline, NodeRole::Entry, limits).await;
    let stats = Arc::clone(&server.stats);

    let mut first = TcpStream::connect(server.addr).await.unwrap();
    wait_until("the first accept", || load(&stats.accepted) == 1).await;
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    wait_until("the second accept", || load(&stats.accepted) == 2).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    wait_until("the rejection", || load(&stats.rejected_connections) == 1).await;

    assert!(closed_by_peer(&mut third, PATIENCE).await);
    let quiet = Duration::from_millis(100);
    assert!(!closed_by_peer(&mut first, quiet).await);
    assert!(!closed_by_peer(&mut second, quiet).await);
    assert_eq!(load(&stats.active_connections), 2);

    // Closing one frees its slot.
    drop(first);
    wait_until("the slot to free", || load(&stats.active_connections) == 1).await;
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    wait_until("the fourth accept", || load(&stats.accepted) == 3).await;
    assert!(!closed_by_peer(&mut fourth, quiet).await);
    assert_eq!(load(&stats.rejected_connections), 1);
    server.stop().await;
}

// ---- egress -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_delivers_frames_in_order_from_a_std_thread() {
    const N: u32 = 500;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = start_sink("127.0.0.1:0".parse().unwrap(), tx).await;
    let egress = Arc::new(TcpEgress::new(limits(), tokio::runtime::Handle::current()));

    let sender = {
        let egress = Arc::clone(&egress);
        let to = sink.addr;
        std::thread::spawn(move || {
            let pool = BufferPool::new(64);
            for i in 0..N {
                // Retry on a full queue: the point here is ordering.
                while egress.send(to, pooled(&pool, &numbered_frame(i))) == Err(DropCause::Overload)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            egress.flush_blocking(PATIENCE)
        })
    };
    let numbers = receive_numbers(&mut rx, N as usize).await;
    assert_eq!(numbers, (0..N).collect::<Vec<_>>());
    assert!(
        tokio::task::spawn_blocking(move || sender.join().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(load(&egress.stats().sent), u64::from(N));
    assert_eq!(load(&egress.stats().lost), 0);
    assert_eq!(egress.queue_depths(), vec![(sink.addr, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_queues_while_the_next_hop_restarts_then_reconnects() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = start_sink("127.0.0.1:0".parse().unwrap(), tx.clone()).await;
    let addr = sink.addr;
    let egress = TcpEgress::new(limits(), tokio::runtime::Handle::current());
    let pool = BufferPool::new(64);

    for i in 0..10 {
        egress
            .send(addr, pooled(&pool, &numbered_frame(i)))
            .unwrap();
    }
    assert_eq!(
        receive_numbers(&mut rx, 10).await,
        (0..10).collect::<Vec<_>>()
    );

    sink.stop().await;
    // Let the writer notice the close before new frames come.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 10..20 {
        egress
            .send(addr, pooled(&pool, &numbered_frame(i)))
            .unwrap();
    }
    wait_until("a failed reconnect", || {
        load(&egress.stats().connect_failures) >= 1
    })
    .await;
    assert_eq!(
        egress.queue_depths(),
        vec![(addr, 10)],
        "queued, not dropped"
    );

    let _sink = start_sink(addr, tx).await;
    assert_eq!(
        receive_numbers(&mut rx, 10).await,
        (10..20).collect::<Vec<_>>()
    );
    assert!(egress.flush(PATIENCE).await);
    assert_eq!(load(&egress.stats().sent), 20);
    assert_eq!(load(&egress.stats().lost), 0);
    assert_eq!(load(&egress.stats().reconnects), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_takes_groups_whole_in_order_and_refuses_only_what_does_not_fit() {
    let limits = TcpLimits {
        egress_queue_depth: 8,
        ..limits()
    };
    let egress = TcpEgress::new(limits, tokio::runtime::Handle::current());
    let pool = BufferPool::new(64);
    let group = |range: std::ops::Range<u32>| -> Vec<_> {
        range.map(|i| pooled(&pool, &numbered_frame(i))).collect()
    };

    // A next hop that is down: its queue fills, and a group only partly fits.
    let dead = dead_addr().await;
    egress.send_frames(dead, group(0..5)).unwrap();
    assert_eq!(
        egress.send_frames(dead, group(5..10)),
        Err(TcpRefused {
            frames: 2,
            cause: DropCause::Overload
        })
    );
    assert_eq!(egress.queue_depths(), vec![(dead, 8)]);
    assert_eq!(load(&egress.stats().queue_full), 2);
    // One bad buffer refuses its whole group (it would break framing).
    let mut bad = group(0..2);
    bad.push(pooled(&pool, &[1, 2, 3]));
    let other = dead_addr().await;
    assert_eq!(
        egress.send_frames(other, bad),
        Err(TcpRefused {
            frames: 3,
            cause: DropCause::Sphinx(DropReason::Malformed)
        })
    );

    // A live one gets every group's frames, in order.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = start_sink("127.0.0.1:0".parse().unwrap(), tx).await;
    for range in [0..3, 3..6, 6..6, 6..8] {
        egress.send_frames(sink.addr, group(range)).unwrap();
    }
    assert_eq!(
        receive_numbers(&mut rx, 8).await,
        (0..8).collect::<Vec<_>>()
    );
    // (`flush` would wait for the dead hop's queue too.)
    wait_until("the live queue to drain", || {
        load(&egress.stats().sent) == 8
    })
    .await;
    assert!(egress.queue_depths().contains(&(sink.addr, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_reports_overload_when_a_queue_is_full() {
    let limits = TcpLimits {
        egress_queue_depth: 8,
        max_peers: 2,
        ..limits()
    };
    let egress = TcpEgress::new(limits, tokio::runtime::Handle::current());
    let pool = BufferPool::new(64);
    let dead = dead_addr().await;

    for i in 0..8 {
        egress
            .send(dead, pooled(&pool, &numbered_frame(i)))
            .unwrap();
    }
    assert_eq!(
        egress.send(dead, pooled(&pool, &numbered_frame(8))),
        Err(DropCause::Overload)
    );
    assert_eq!(egress.queue_depths(), vec![(dead, 8)]);
    assert_eq!(load(&egress.stats().queue_full), 1);

    // Not a frame: refused without touching the queue.
    assert_eq!(
        egress.send(dead, pooled(&pool, &[1, 2, 3])),
        Err(DropCause::Sphinx(DropReason::Malformed))
    );

    // The number of next hops is bounded too.
    let other = dead_addr().await;
    egress
        .send(other, pooled(&pool, &numbered_frame(0)))
        .unwrap();
    let third = dead_addr().await;
    assert_eq!(
        egress.send(third, pooled(&pool, &numbered_frame(0))),
        Err(DropCause::Overload)
    );

    // Shutdown drops what is queued, counted, and refuses more.
    assert!(!egress.flush(Duration::from_millis(50)).await);
    egress.shutdown();
    assert_eq!(
        egress.send(dead, pooled(&pool, &numbered_frame(0))),
        Err(DropCause::Shutdown)
    );
    wait_until("queued frames to be abandoned", || {
        load(&egress.stats().abandoned) == 9
    })
    .await;
    assert_eq!(egress.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_next_hop_is_retired_and_revived_on_demand() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = start_sink("127.0.0.1:0".parse().unwrap(), tx).await;
    let limits = TcpLimits {
        idle_timeout: Duration::from_millis(150),
        ..limits()
    };
    let egress = TcpEgress::new(limits, tokio::runtime::Handle::current());
    let pool = BufferPool::new(8);

    egress
        .send(sink.addr, pooled(&pool, &numbered_frame(1)))
        .unwrap();
    assert_eq!(receive_numbers(&mut rx, 1).await, vec![1]);
    wait_until("the idle queue to retire", || {
        egress.queue_depths().is_empty()
    })
    .await;

    egress
        .send(sink.addr, pooled(&pool, &numbered_frame(2)))
        .unwrap();
    assert_eq!(receive_numbers(&mut rx, 1).await, vec![2]);
    // The sink may read the frame before the writer counts it.
    assert!(egress.flush(PATIENCE).await);
    assert_eq!(load(&egress.stats().sent), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_next_hop_is_given_up_after_the_idle_timeout() {
    let limits = TcpLimits {
        idle_timeout: Duration::from_millis(200),
        reconnect_backoff_max: Duration::from_millis(50),
        ..limits()
    };
    let egress = TcpEgress::new(limits, tokio::runtime::Handle::current());
    let pool = BufferPool::new(8);
    let dead = dead_addr().await;
    for i in 0..3 {
        egress
            .send(dead, pooled(&pool, &numbered_frame(i)))
            .unwrap();
    }
    wait_until("the queue to be given up", || {
        load(&egress.stats().abandoned) == 3
    })
    .await;
    assert!(egress.queue_depths().is_empty());
    assert!(load(&egress.stats().connect_failures) >= 2);
}

#[test]
fn limits_come_from_the_transport_config() {
    let config = betanet::config::TransportConfig {
        tcp_read_timeout_ms: 1500,
        tcp_idle_timeout_ms: 60_000,
        max_connections_per_source: 4,
        member_reserved_percent: 50,
        egress_queue_depth: 100,
        reconnect_backoff_max_ms: 3000,
        ..Default::default()
    };
    let limits = TcpLimits::from(&config);
    assert_eq!(
        limits.reserved_member_connections,
        limits.max_connections / 2
    );
    assert_eq!(limits.read_timeout, Duration::from_millis(1500));
    assert_eq!(limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(limits.max_connections_per_source, 4);
    assert_eq!(limits.egress_queue_depth, 100);
    assert_eq!(limits.reconnect_backoff_max, Duration::from_secs(3));
    assert!(limits.reconnect_backoff_initial <= limits.reconnect_backoff_max);
}
