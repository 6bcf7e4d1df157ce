//! The shared socket over real loopback TCP: frames from the fan-out and from hyper's side never
//! interleave, whatever the kernel buffer takes, and a client that stops reading is cut.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::wire::FrameHeader;
use super::{Refused, Socket, SocketIo};

/// A connected pair: our shared socket (server side) and the plain client end.
async fn pair() -> (Arc<Socket>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (Socket::new(server), client)
}

/// Frame `i`: a binary payload of `len` bytes, each byte `i`.
fn payload(i: u8, len: usize) -> Bytes {
    Bytes::from(vec![i; len])
}

/// Everything the client end receives until the server end closes. It starts reading only
/// once far more than the kernel buffers hold has been sent, so most frames are queued and some
/// are split by partial writes.
fn read_late(mut client: TcpStream) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut stream = Vec::new();
        client.read_to_end(&mut stream).await.expect("read to end");
        stream
    })
}

/// Parses unmasked binary frames off `bytes` (only what `FrameHeader::binary` produces).
fn parse_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert_eq!(bytes[0], 0x82, "every frame starts with FIN + binary");
        let (len, header) = match bytes[1] {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")) as usize, 10),
            short => (usize::from(short), 2),
        };
        frames.push(bytes[header..header + len].to_vec());
        bytes = &bytes[header + len..];
    }
    frames
}

#[tokio::test]
async fn frames_from_both_writers_arrive_whole_and_in_order_through_a_full_socket() {
    let (socket, client) = pair().await;
    let reader = read_late(client);
    let mut io = SocketIo(socket.clone());
    let mut expected = Vec::new();
    let mut queued = false;
    for i in 0..200u8 {
        let len = 1000 + usize::from(i) * 997;
        let body = payload(i, len);
        if i % 3 == 0 {
            // As hyper writes: already-framed bytes through the AsyncWrite side. They
            // wait until the fan-out frames queued before them are written.
            let mut framed = FrameHeader::binary(len).as_slice().to_vec();
            framed.extend_from_slice(&body);
            io.write_all(&framed).await.expect("write through SocketIo");
        } else {
            assert_eq!(socket.send_frame(&FrameHeader::binary(len), &body, usize::MAX), Ok(()));
            queued |= !socket.out.lock().is_empty();
        }
        expected.push(body.to_vec());
    }
    assert!(queued, "the socket filled up, so the queue was exercised");
    io.flush().await.expect("drain");
    assert!(socket.out.lock().is_empty());
    drop((io, socket));
    let stream = reader.await.expect("reader");
    assert_eq!(parse_frames(&stream), expected);
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_once_its_queue_is_full() {
    let (socket, _client) = pair().await;
    let body = payload(1, 64 * 1024);
    let header = FrameHeader::binary(body.len());
    let limit = 4;
    let mut accepted = 0;
    let refused = loop {
        match socket.send_frame(&header, &body, limit) {
            Ok(()) => accepted += 1,
            Err(refused) => break refused,
        }
        assert!(accepted < 10_000, "the kernel cannot buffer this much");
    };
    assert_eq!(refused, Refused::SlowConsumer);
    assert_eq!(socket.cut_reason(), Some(super::Cut::SlowConsumer));
    // Once cut, the room gets `Gone` and forgets the client; nothing is queued past the limit.
    assert_eq!(socket.send_frame(&header, &body, limit), Err(Refused::Gone));
    assert_eq!(socket.out.lock().len(), limit);
    tokio::time::timeout(std::time::Duration::from_secs(1), socket.backlog())
        .await
        .expect("the connection task is told");
}

#[tokio::test]
async fn a_round_s_frames_go_out_together_and_in_order_through_a_full_socket() {
    let (socket, client) = pair().await;
    let reader = read_late(client);
    let mut expected = Vec::new();
    let mut queued = false;
    // Rounds of 1 to 40 frames (past the 32 one writev takes), until well past the kernel buffer.
    for round in 0..120u8 {
        let bodies: Vec<Bytes> = (0..=usize::from(round) % 40)
            .map(|i| payload(round, 100 + i * 997 + usize::from(round)))
            .collect();
        let headers: Vec<FrameHeader> = bodies.iter().map(|b| FrameHeader::binary(b.len())).collect();
        let frames: Vec<(&FrameHeader, &Bytes)> = headers.iter().zip(&bodies).collect();
        assert_eq!(socket.send_frames(&frames, usize::MAX), Ok(()));
        queued |= !socket.out.lock().is_empty();
        expected.extend(bodies.iter().map(|b| b.to_vec()));
    }
    assert!(queued, "the socket filled up, so rounds were queued");
    SocketIo(socket.clone()).flush().await.expect("drain");
    drop(socket);
    let stream = reader.await.expect("reader");
    assert_eq!(parse_frames(&stream), expected);
}

#[tokio::test]
async fn a_round_that_would_queue_past_the_limit_cuts_the_client() {
    let (socket, _client) = pair().await;
    let body = payload(2, 64 * 1024);
    let header = FrameHeader::binary(body.len());
    // Fill the kernel buffer until something is queued.
    while socket.out.lock().is_empty() {
        assert_eq!(socket.send_frame(&header, &body, 8), Ok(()));
    }
    let waiting = socket.out.lock().len();
    let limit = waiting + 2;
    let two = [(&header, &body), (&header, &body)];
    assert_eq!(socket.send_frames(&two, limit), Ok(()), "exactly up to the limit");
    assert_eq!(socket.out.lock().len(), limit);
    assert_eq!(socket.send_frames(&two, limit + 1), Err(Refused::SlowConsumer), "one past it");
    assert_eq!(socket.cut_reason(), Some(super::Cut::SlowConsumer));
    assert_eq!(socket.out.lock().len(), limit, "nothing of the refused round was queued");
}

/// The 101 hyper writes while held waits in the queue, through hyper's own flush, and goes out
/// with the connection's first frame when the connection flushes: in order, in one write, and
/// the drained socket keeps no queue buffer.
#[tokio::test]
async fn a_held_http_answer_goes_out_first_with_the_first_frame() {
    let (socket, mut client) = pair().await;
    socket.hold_http_answer();
    let answer = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
    let mut io = SocketIo::new(socket.clone());
    io.write_all(answer).await.expect("hyper's write is taken");
    io.flush().await.expect("hyper's flush returns at once");
    socket.send_frame(&FrameHeader::binary(3), &payload(7, 3), 16).expect("queued behind the answer");
    assert_eq!(socket.out.lock().len(), 2, "nothing is written before the connection flushes");
    socket.flush().await.expect("flush");
    let mut expected = answer.to_vec();
    expected.extend_from_slice(&[0x82, 3, 7, 7, 7]);
    let mut got = vec![0; expected.len()];
    client.read_exact(&mut got).await.expect("read");
    assert_eq!(got, expected);
    let out = socket.out.lock();
    assert_eq!((out.len(), out.capacity(), out.held), (0, 0, false));
}
