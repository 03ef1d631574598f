//! A plain SMTP server on loopback for tests of a whole gateway (the notifier's own tests, with
//! STARTTLS and AUTH, are in `tests/notify/smtp.rs`): it takes every message and keeps its text.
//! [`Smtp::silent_at`] accepts connections and never says a word, like a server that hangs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Smtp {
    pub addr: SocketAddr,
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Smtp {
    /// A server on `addr` that delivers.
    pub fn at(addr: SocketAddr) -> Smtp {
        Smtp::start(addr, false)
    }

    /// A server on `addr` that accepts and never answers.
    pub fn silent_at(addr: SocketAddr) -> Smtp {
        Smtp::start(addr, true)
    }

    fn start(addr: SocketAddr, silent: bool) -> Smtp {
        let listener = TcpListener::bind(addr).expect("the SMTP port is free");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped) = (Arc::clone(&messages), Arc::clone(&stop));
        let accepting = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    if silent {
                        let _ = (&stream).read_to_end(&mut Vec::new());
                    } else {
                        let _ = converse(stream, &kept);
                    }
                });
            }
        });
        Smtp {
            addr,
            messages,
            stop,
            accepting: Some(accepting),
        }
    }

    /// The text of every message delivered so far (the DATA, dot-unstuffed).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and lets the port go, before the next server
        // on this port binds it.
        let _ = TcpStream::connect(self.addr);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

fn converse(stream: TcpStream, kept: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 localhost ESMTP test\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => out.write_all(b"250-localhost\r\n250 8BITMIME\r\n")?,
            "DATA" => {
                out.write_all(b"354 go on\r\n")?;
                let mut text = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    text.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                kept.lock().unwrap().push(text);
                out.write_all(b"250 kept\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"250 ok\r\n")?,
        }
    }
}
