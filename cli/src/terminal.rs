//! The terminal `hoist run` hands to a one-off process: raw mode while it runs (every
//! key goes to the process, which echoes), restored when the guard drops or hoist exits.

use rustix::termios::{self, OptionalActions, Termios};
use std::io::IsTerminal;

/// Rows and columns of the terminal on stdout, when stdin and stdout are both terminals.
pub fn size() -> Option<(u16, u16)> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return None;
    }
    Some(match termios::tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_row > 0 => (size.ws_row, size.ws_col),
        _ => (24, 80),
    })
}

/// Raw mode on stdin until dropped (or [`RawMode::restore`]).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        let saved = termios::tcgetattr(std::io::stdin()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }

    pub fn restore(&self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}
