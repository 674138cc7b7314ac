//! One registry of URI schemes: how the CLI, Python and config files build
//! sources, sinks and layers. A plugin is a crate with a
//! `pub fn register(registry: &mut Registry)` that adds its schemes.
//!
//! ```
//! # use streamkit_core::registry::Registry;
//! let registry = Registry::new();
//! let err = registry.build_source("hsl:out").err().unwrap().to_string();
//! assert!(err.contains("unknown source scheme 'hsl:'"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::sink::Sink;
use crate::source::Source;
use crate::uri::{closest, Uri};

/// What a scheme builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Source,
    Sink,
    Layer,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Source => "source",
            Kind::Sink => "sink",
            Kind::Layer => "layer",
        })
    }
}

/// A registered scheme, as `streamkit list` shows it.
#[derive(Clone, Debug)]
pub struct SchemeInfo {
    pub scheme: String,
    pub kind: Kind,
    pub summary: String,
    pub example: String,
    pub plugin: String,
}

/// A layer built from a URI, with the placement options every layer takes
/// (`id=`, `z=`, `opacity=`).
pub struct LayerSpec {
    pub id: Option<String>,
    pub z_index: Option<i32>,
    pub opacity: f32,
    pub layer: Box<dyn Layer>,
}

/// Factories get the registry too, so that a scheme can wrap another URI
/// (`video:test:ball` builds its inner source through it).
pub type SourceFactory = Box<dyn Fn(&Uri, &Registry) -> Result<Box<dyn Source>> + Send + Sync>;
pub type SinkFactory = Box<dyn Fn(&Uri, &Registry) -> Result<Box<dyn Sink>> + Send + Sync>;
pub type LayerFactory = Box<dyn Fn(&Uri, &Registry) -> Result<Box<dyn Layer>> + Send + Sync>;

struct Entry<F> {
    info: SchemeInfo,
    factory: F,
}

/// Schemes → factories, plus which scheme a file extension and `-` mean.
#[derive(Default)]
pub struct Registry {
    plugins: Vec<(String, String)>,
    sources: BTreeMap<String, Entry<SourceFactory>>,
    sinks: BTreeMap<String, Entry<SinkFactory>>,
    layers: BTreeMap<String, Entry<LayerFactory>>,
    extensions: BTreeMap<String, String>,
    stdio: Option<String>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Starts a plugin's registrations; later schemes are listed under it.
    pub fn plugin(&mut self, name: &str, description: &str) -> &mut Self {
        self.plugins.push((name.to_string(), description.to_string()));
        self
    }

    pub fn plugins(&self) -> &[(String, String)] {
        &self.plugins
    }

    fn info(&self, scheme: &str, kind: Kind, summary: &str, example: &str) -> SchemeInfo {
        SchemeInfo {
            scheme: scheme.to_string(),
            kind,
            summary: summary.to_string(),
            example: example.to_string(),
            plugin: self.plugins.last().map(|p| p.0.clone()).unwrap_or_default(),
        }
    }

    pub fn source<F>(&mut self, scheme: &str, summary: &str, example: &str, factory: F) -> &mut Self
    where
        F: Fn(&Uri, &Registry) -> Result<Box<dyn Source>> + Send + Sync + 'static,
    {
        let info = self.info(scheme, Kind::Source, summary, example);
        self.sources.insert(scheme.to_string(), Entry { info, factory: Box::new(factory) });
        self
    }

    pub fn sink<F>(&mut self, scheme: &str, summary: &str, example: &str, factory: F) -> &mut Self
    where
        F: Fn(&Uri, &Registry) -> Result<Box<dyn Sink>> + Send + Sync + 'static,
    {
        let info = self.info(scheme, Kind::Sink, summary, example);
        self.sinks.insert(scheme.to_string(), Entry { info, factory: Box::new(factory) });
        self
    }

    pub fn layer<F>(&mut self, scheme: &str, summary: &str, example: &str, factory: F) -> &mut Self
    where
        F: Fn(&Uri, &Registry) -> Result<Box<dyn Layer>> + Send + Sync + 'static,
    {
        let info = self.info(scheme, Kind::Layer, summary, example);
        self.layers.insert(scheme.to_string(), Entry { info, factory: Box::new(factory) });
        self
    }

    /// Bare paths and `file:` URIs ending in `.ext` go to `scheme`.
    pub fn file_extension(&mut self, ext: &str, scheme: &str) -> &mut Self {
        self.extensions.insert(ext.to_ascii_lowercase(), scheme.to_string());
        self
    }

    /// What `-` (stdin as a source, stdout as a sink) means.
    pub fn stdio(&mut self, scheme: &str) -> &mut Self {
        self.stdio = Some(scheme.to_string());
        self
    }

    /// Every scheme, sorted by kind then name.
    pub fn schemes(&self) -> Vec<SchemeInfo> {
        let mut all: Vec<SchemeInfo> = self
            .sources
            .values()
            .map(|e| e.info.clone())
            .chain(self.sinks.values().map(|e| e.info.clone()))
            .chain(self.layers.values().map(|e| e.info.clone()))
            .collect();
        all.sort_by(|a, b| (a.kind, &a.scheme).cmp(&(b.kind, &b.scheme)));
        all
    }

    /// File extensions and the scheme each maps to.
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extensions.iter().map(|(e, s)| (e.as_str(), s.as_str()))
    }

    pub fn build_source(&self, text: &str) -> Result<Box<dyn Source>> {
        let uri = self.resolve(text, Kind::Source)?;
        let entry = lookup(&self.sources, &uri, Kind::Source)?;
        (entry.factory)(&uri, self)
    }

    pub fn build_sink(&self, text: &str) -> Result<Box<dyn Sink>> {
        let uri = self.resolve(text, Kind::Sink)?;
        let entry = lookup(&self.sinks, &uri, Kind::Sink)?;
        (entry.factory)(&uri, self)
    }

    /// Builds a layer; `id`, `z` and `opacity` in the query are placement
    /// options common to every layer and are not seen by the factory.
    pub fn build_layer(&self, text: &str) -> Result<LayerSpec> {
        let mut uri = self.resolve(text, Kind::Layer)?;
        let id = uri.take_query("id");
        let z_index = match uri.take_query("z") {
            None => None,
            Some(z) => Some(z.parse().map_err(|_| Error::uri(text, format!("option 'z={z}' is not an integer")))?),
        };
        let opacity = match uri.take_query("opacity") {
            None => 1.0,
            Some(o) => o
                .parse::<f32>()
                .ok()
                .filter(|o| (0.0..=1.0).contains(o))
                .ok_or_else(|| Error::uri(text, format!("option 'opacity={o}' is not a number from 0 to 1")))?,
        };
        let entry = lookup(&self.layers, &uri, Kind::Layer)?;
        let layer = (entry.factory)(&uri, self)?;
        Ok(LayerSpec { id, z_index, opacity, layer })
    }

    /// Parses `text` and picks the scheme for `-`, bare paths and `file:`.
    fn resolve(&self, text: &str, kind: Kind) -> Result<Uri> {
        let uri = Uri::parse(text)?;
        match uri.scheme.as_str() {
            "-" if kind != Kind::Layer => match &self.stdio {
                Some(scheme) => Ok(uri.with_scheme(scheme)),
                None => Err(Error::uri(text, "no plugin handles '-' (stdin/stdout)")),
            },
            "" | "file" if kind != Kind::Layer => {
                let scheme = uri.extension().and_then(|ext| self.extensions.get(&ext));
                match scheme {
                    Some(scheme) => Ok(uri.with_scheme(scheme)),
                    None => Err(Error::uri(
                        text,
                        format!(
                            "no scheme, and the file extension is not one streamkit knows; known extensions: {} (or write scheme:path, e.g. y4m:{})",
                            self.extensions.keys().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", "),
                            uri.body
                        ),
                    )),
                }
            }
            "" => Err(Error::uri(text, "a layer URI needs a scheme, e.g. 'text:Hello'")),
            _ => Ok(uri),
        }
    }
}

fn lookup<'r, F>(map: &'r BTreeMap<String, Entry<F>>, uri: &Uri, kind: Kind) -> Result<&'r Entry<F>> {
    map.get(&uri.scheme).ok_or_else(|| {
        let known: Vec<&str> = map.keys().map(String::as_str).collect();
        let hint =
            closest(&uri.scheme, known.iter().copied()).map(|s| format!("; did you mean '{s}:'?")).unwrap_or_default();
        Error::uri(
            &uri.raw,
            format!(
                "unknown {kind} scheme '{}:'; known: {}{hint}",
                uri.scheme,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::FnLayer;
    use crate::source::SourceInfo;
    use crate::Frame;
    use async_trait::async_trait;

    struct Empty(String);

    #[async_trait]
    impl Source for Empty {
        fn info(&self) -> SourceInfo {
            SourceInfo::new(self.0.clone())
        }
        async fn next_frame(&mut self) -> Result<Option<Frame>> {
            Ok(None)
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.plugin("demo", "for tests")
            .source("test", "patterns", "test:smpte", |uri, _| {
                let mut o = uri.options();
                let size = o.size("size")?;
                o.finish()?;
                Ok(Box::new(Empty(format!("{} {size:?}", uri.body))))
            })
            .source("y4m", "Y4M files", "y4m:in.y4m", |uri, _| Ok(Box::new(Empty(format!("y4m {}", uri.body)))))
            .layer("text", "text", "text:Hi", |_, _| {
                Ok(Box::new(FnLayer::new(|_: &mut crate::canvas::Canvas<'_>, _: &crate::FrameContext<'_>| Ok(()))))
            })
            .file_extension("y4m", "y4m")
            .stdio("y4m");
        r
    }

    #[test]
    fn builds_by_scheme_extension_and_stdio() {
        let r = registry();
        assert_eq!(r.build_source("test:smpte?size=64x32").unwrap().info().description, "smpte Some((64, 32))");
        assert_eq!(r.build_source("clip.y4m").unwrap().info().description, "y4m clip.y4m");
        assert_eq!(r.build_source("file:dir/clip.Y4M").unwrap().info().description, "y4m dir/clip.Y4M");
        assert_eq!(r.build_source("-").unwrap().info().description, "y4m ");
        assert_eq!(r.schemes()[0].plugin, "demo");
    }

    #[test]
    fn errors_name_the_problem_and_what_is_known() {
        let r = registry();
        let e = r.build_source("tset:smpte").err().unwrap().to_string();
        assert!(
            e.contains("unknown source scheme 'tset:'")
                && e.contains("known: test, y4m")
                && e.contains("did you mean 'test:'"),
            "{e}"
        );
        let e = r.build_source("clip.mkv").err().unwrap().to_string();
        assert!(e.contains("known extensions: .y4m"), "{e}");
        let e = r.build_sink("out.y4m").err().unwrap().to_string();
        assert!(e.contains("unknown sink scheme 'y4m:'"), "{e}");
        let e = r.build_source("test:smpte?fps=30").err().unwrap().to_string();
        assert!(e.contains("unknown option 'fps'") && e.contains("known: size"), "{e}");
    }

    #[test]
    fn layer_placement_options() {
        let r = registry();
        let spec = r.build_layer("text:Hi?id=t1&z=4&opacity=0.5").unwrap();
        assert_eq!((spec.id.as_deref(), spec.z_index, spec.opacity), (Some("t1"), Some(4), 0.5));
        let e = r.build_layer("text:Hi?opacity=2").err().unwrap().to_string();
        assert!(e.contains("opacity=2"), "{e}");
    }
}
