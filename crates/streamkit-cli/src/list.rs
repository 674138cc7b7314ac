//! `streamkit list`: what can be named in a URI.

use streamkit_core::registry::Kind;
use streamkit_core::Result;

pub fn list() -> Result<()> {
    let registry = crate::plugins::registry();
    println!("Plugins:");
    for (name, description) in registry.plugins() {
        println!("  {name:<12} {description}");
    }
    for kind in [Kind::Source, Kind::Sink, Kind::Layer] {
        println!("\n{}s:", capitalised(&kind.to_string()));
        for info in registry.schemes().iter().filter(|s| s.kind == kind) {
            println!("  {:<10} {}", format!("{}:", info.scheme), info.summary);
            println!("  {:<10} e.g. {}", "", info.example);
        }
    }
    println!("\nFile extensions (bare paths and file:PATH):");
    for (ext, scheme) in registry.extensions() {
        println!("  .{ext:<9} → {scheme}:");
    }
    println!("\nEvery layer also takes id=, z= (stacking order) and opacity= (0..1).");
    Ok(())
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
