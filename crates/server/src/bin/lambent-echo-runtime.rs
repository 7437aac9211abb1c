//! A minimal compiled `provided` runtime for benchmarks: std-only Rust speaking the Runtime API
//! over one kept-alive HTTP/1.1 connection, echoing each event back as the response. Measures
//! what the platform costs when the function costs (almost) nothing.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API is not set");
    let stream = TcpStream::connect(&api).expect("cannot reach the Runtime API");
    stream.set_nodelay(true).ok();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    // Each request goes out in one write: with Nagle off, every write is a segment of its
    // own, and `write!` on the socket writes once per literal and argument (11 segments per
    // invocation where 2 do: a syscall and a trip through loopback TCP each).
    let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n");
    let mut request = Vec::with_capacity(1024);
    loop {
        writer.write_all(next.as_bytes()).expect("write");
        let (headers, body) = read_response(&mut reader);
        let id = header(&headers, "lambda-runtime-aws-request-id").expect("no request id");
        request.clear();
        write!(
            request,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("write to a Vec");
        request.extend_from_slice(&body);
        writer.write_all(&request).expect("write");
        read_response(&mut reader);
    }
}

fn read_response(reader: &mut impl BufRead) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("header") == 0 {
            std::process::exit(0);
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("body");
    (headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
