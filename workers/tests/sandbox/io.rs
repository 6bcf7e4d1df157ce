//! What goes in and comes out: the program exactly, then its stdin exactly, and the output in order.

use protocol::run::OutputStream;

use crate::Harness;

const ECHO: &str = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())";

#[tokio::test]
async fn stdin_passes_through_exactly() {
    let harness = Harness::start(&[]).await;
    let stdin = "héllo wörld ✓\n\n  tabs\there\r\nno newline at the end: 日本語";
    let outcome = harness.python_with_stdin(ECHO, stdin).await;
    outcome.assert_ok();
    assert_eq!(outcome.stdout(), stdin.as_bytes());

    let empty = harness.python_with_stdin(ECHO, "").await;
    empty.assert_ok();
    assert!(empty.stdout().is_empty(), "{empty}");
    harness.finish().await;
}

#[tokio::test]
async fn the_program_is_read_to_its_byte_length_and_the_rest_is_its_stdin() {
    let harness = Harness::start(&[]).await;
    // Non-ASCII in the program (its length is in bytes), no newline at its end, and a stdin that
    // looks like more program.
    let code = "# ünïcödé comment: the length is in bytes\nimport sys\nsys.stdout.write('[' + sys.stdin.read() + ']')";
    let stdin = "print('not the program')\n12\nrest";
    let outcome = harness.python_with_stdin(code, stdin).await;
    outcome.assert_ok();
    assert_eq!(outcome.stdout_text(), format!("[{stdin}]"));
    harness.finish().await;
}

#[tokio::test]
async fn a_large_stdin_read_slowly_arrives_whole() {
    let harness = Harness::start(&["--exec-output-max-kb=80"]).await;
    // 64 KiB, read 1 KiB at a time with a pause (the writer must wait for the reader), then echoed.
    let stdin: String = (0..64 * 1024).map(|at| char::from(b'a' + (at % 26) as u8)).collect();
    let code = "\
import sys, time
chunks = []
while chunk := sys.stdin.buffer.read1(1024):
    chunks.append(chunk)
    time.sleep(0.002)
sys.stdout.buffer.write(b''.join(chunks))
";
    let outcome = harness.python_with_stdin(code, &stdin).await;
    outcome.assert_ok();
    assert!(
        outcome.stdout() == stdin.as_bytes(),
        "{} bytes came back of {}",
        outcome.stdout().len(),
        stdin.len()
    );
    harness.finish().await;
}

#[tokio::test]
async fn output_comes_in_the_order_it_was_written() {
    let harness = Harness::start(&[]).await;
    let code = "\
import sys, time
for i in range(6):
    stream = sys.stdout if i % 2 == 0 else sys.stderr
    stream.write(f'{i}\\n')
    stream.flush()
    time.sleep(0.05)
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let order: Vec<(OutputStream, String)> = outcome
        .chunks
        .iter()
        .map(|chunk| (chunk.stream, String::from_utf8_lossy(&chunk.bytes).into_owned()))
        .collect();
    let expected: Vec<(OutputStream, String)> = (0..6)
        .map(|i| (if i % 2 == 0 { OutputStream::Stdout } else { OutputStream::Stderr }, format!("{i}\n")))
        .collect();
    assert_eq!(order, expected);
    harness.finish().await;
}
