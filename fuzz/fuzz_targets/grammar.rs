//! Differential fuzzing of the grammars margay parses by hand: each input is given to
//! margay's parser and to the reference recogniser written from the ABNF
//! (`tests/reference/abnf.rs`), and any disagreement, on whether it is accepted or on what it
//! means, fails (the checks are in `tests/reference/differential.rs`).
//!
//! Input layout: byte 0 picks the grammar (modulo 10, in the order of the match below); the
//! rest is the candidate. For fields that may come in several lines, `\n` separates them.

#![no_main]

#[path = "../../tests/reference/mod.rs"]
mod reference;

use libfuzzer_sys::fuzz_target;
use reference::differential as check;

/// Longest candidate tried: the reference is written to be obvious, not fast.
const MAX_CANDIDATE: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&which, candidate)) = data.split_first() else {
        return;
    };
    if candidate.len() > MAX_CANDIDATE {
        return;
    }
    let lines: Vec<&[u8]> = candidate.split(|&b| b == b'\n').collect();
    let verdict = match which % 10 {
        0 => check::chunk_line(candidate),
        1 => check::chunked(candidate),
        2 => check::host(candidate),
        3 => check::content_length(&lines),
        4 => check::transfer_encoding(&lines),
        5 => check::expect(&lines),
        6 => check::range(candidate),
        7 => check::tag_list(&lines),
        8 => check::http_date(candidate),
        _ => check::request_target(candidate),
    };
    if let Err(disagreement) = verdict {
        panic!("{disagreement}");
    }
});
