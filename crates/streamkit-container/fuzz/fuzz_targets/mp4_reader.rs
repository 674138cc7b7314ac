//! Arbitrary bytes into the MP4 reader, whole and in pushes: no panic, every
//! listed sample inside the input, and both ways agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| streamkit_container::fuzzing::mp4_reader(data));
