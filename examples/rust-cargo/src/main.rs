//! A tiny HTTP server on $PORT: answers every request with one line.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "5000".to_string());
    let listener = TcpListener::bind(("0.0.0.0", port.parse::<u16>().expect("PORT is a number"))).expect("port is free");
    println!("listening on {port}");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(stream.try_clone().expect("socket clones"));
        let mut line = String::new();
        // Read the request head up to the empty line.
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
            line.clear();
        }
        let body = "Hello from Rust\n";
        let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    }
}
