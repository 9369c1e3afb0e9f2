//! The grammars margay parses by hand, twice: `abnf` is a reference written straight from the
//! RFCs' ABNF, `differential` feeds one input to margay's parser and to the reference and says
//! how they disagree. Shared by the property tests (`tests/grammar_properties.rs`) and the
//! `grammar` fuzz target.

pub mod abnf;
pub mod differential;
