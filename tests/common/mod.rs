//! Support shared by the integration tests, by what it provides: the known document root
//! (`site`), the server under test in process (`server`) and as the binary (`process`), a
//! raw-socket client (`client`), assertions on responses (`checks`) and byte-range parsing
//! (`ranges`). Everything is re-exported here, so a test file needs only `use common::*;`.

// Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

mod checks;
mod client;
mod process;
mod ranges;
mod server;
mod site;

// A test binary that uses nothing of a part would see its re-export warned about.
#[allow(unused_imports)]
pub use {checks::*, client::*, process::*, ranges::*, server::*, site::*};

/// Runs a test body once per concurrency model: `both_models!(name, |model| { ... })` expands to
/// `mod name { #[test] fn reactor() {..} #[test] fn threads() {..} }`. Attributes written
/// before the name (`#[ignore = "why"]`) go on both tests. Exported so a test file can use it
/// with either `#[macro_use] mod common;` or a plain `mod common;`.
#[macro_export]
macro_rules! both_models {
    ($(#[$attr:meta])* $name:ident, |$model:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_variables)]
            fn run($model: margay::Model) $body

            #[test]
            $(#[$attr])*
            fn reactor() {
                run(margay::Model::Reactor)
            }

            #[test]
            $(#[$attr])*
            fn threads() {
                run(margay::Model::Threads)
            }
        }
    };
}
