//! Every plugin this binary ships, registered into one registry.

use streamkit_core::registry::Registry;

pub fn registry() -> Registry {
    let mut registry = Registry::new();
    streamkit_builtins::register(&mut registry);
    streamkit_media::register(&mut registry);
    streamkit_rtp::register(&mut registry);
    streamkit_net::register(&mut registry);
    streamkit_webrtc::register(&mut registry);
    // `-` speaks the streamkit wire format (stdin also accepts Y4M); after
    // builtins, which default it to Y4M.
    registry.stdio("wire");
    registry
}
