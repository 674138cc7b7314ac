//! The built-in pages: a WHEP viewer (served by `whep://` at `/`) and a
//! WHIP camera publisher (served by `whip://` at `/`). Plain HTML and
//! JavaScript, no CDN: they work offline and on a LAN.

use crate::peer::IceOptions;

const VIEWER: &str = include_str!("pages/viewer.html");
const PUBLISHER: &str = include_str!("pages/publisher.html");

/// The viewer page with the sink's ICE servers filled in.
pub fn viewer(ice: &IceOptions) -> String {
    VIEWER.replace("__ICE_SERVERS__", &ice.ice_servers_json())
}

/// The publisher page with the source's ICE servers filled in.
pub fn publisher(ice: &IceOptions) -> String {
    PUBLISHER.replace("__ICE_SERVERS__", &ice.ice_servers_json())
}
