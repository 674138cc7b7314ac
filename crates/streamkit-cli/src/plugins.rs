//! Every plugin this binary ships, registered into one registry.

use streamkit_core::registry::Registry;

pub fn registry() -> Registry {
    let mut registry = Registry::new();
    streamkit_builtins::register(&mut registry);
    streamkit_media::register(&mut registry);
    streamkit_rtp::register(&mut registry);
    registry
}
