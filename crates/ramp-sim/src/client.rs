//! Library helpers: [`TestCluster`] (a sim on a random port with a kubeconfig and a
//! `kube::Client`), manifest loading, and locating the shared upstream CRDs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::server::{Server, ServerConfig};
use crate::store::{Store, StoreConfig, WriteOptions, meta_str};

/// Errors of the library helpers.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Reading a file or binding a socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest is not valid YAML.
    #[error("{path}: document {index}: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// 1-based document index.
        index: usize,
        /// Parser message.
        message: String,
    },
    /// A manifest names a kind the sim does not serve.
    #[error("{path}: document {index}: no resource type serves {api_version} {kind}")]
    UnknownKind {
        /// The file.
        path: String,
        /// 1-based document index.
        index: usize,
        /// `apiVersion` of the document.
        api_version: String,
        /// `kind` of the document.
        kind: String,
    },
    /// The API refused an object.
    #[error("{path}: {kind} {name:?}: {source}")]
    Api {
        /// The file.
        path: String,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The error.
        source: ApiError,
    },
    /// Building the kube client failed.
    #[error("kube client: {0}")]
    Kube(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Expands files and directories (`*.yaml`, `*.yml`, `*.json`, sorted) into a file list.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ClusterError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(io(format!("reading {}", p.display())))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io(format!("listing {}", p.display())))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads multi-document YAML manifests (CRDs or any served kind) into the store: created when
/// missing, replaced when present. CRDs are loaded before everything else. Returns
/// `kind/name` of each object.
pub fn load_manifests(store: &Store, paths: &[PathBuf]) -> Result<Vec<String>, ClusterError> {
    let mut docs: Vec<(String, usize, Value)> = Vec::new();
    for file in manifest_files(paths)? {
        let path = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(io(format!("reading {path}")))?;
        for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let v: Value = serde::Deserialize::deserialize(de).map_err(|e| ClusterError::Yaml {
                path: path.clone(),
                index: i + 1,
                message: e.to_string(),
            })?;
            if v.is_null() {
                continue;
            }
            docs.push((path.clone(), i + 1, v));
        }
    }
    docs.sort_by_key(|(_, _, v)| {
        v.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition")
    });
    let mut loaded = Vec::new();
    for (path, index, obj) in docs {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let rt =
            store
                .resolve_kind(&api_version, &kind)
                .ok_or_else(|| ClusterError::UnknownKind {
                    path: path.clone(),
                    index,
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                })?;
        let gr: GroupResource = rt.group_resource();
        let name = meta_str(&obj, "name").to_string();
        let ns = if rt.namespaced {
            let n = meta_str(&obj, "namespace");
            Some(if n.is_empty() { "default" } else { n }.to_string())
        } else {
            None
        };
        let api_err = |source: ApiError| ClusterError::Api {
            path: path.clone(),
            kind: kind.clone(),
            name: name.clone(),
            source,
        };
        let opts = WriteOptions::default();
        match store.create(&gr, ns.as_deref(), obj.clone(), &opts) {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {
                let mut o = obj;
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                store
                    .update(&gr, ns.as_deref(), &name, o, None, &opts)
                    .map_err(api_err)?;
            }
            Err(e) => return Err(api_err(e)),
        }
        loaded.push(format!("{}/{name}", kind.to_lowercase()));
    }
    Ok(loaded)
}

/// The directory of the shared upstream CRDs (Istio, Gateway API): `$RAMP_SHARED_CRDS`, else
/// `<workspace>/../shared/crds`.
pub fn shared_crds_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("RAMP_SHARED_CRDS").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    // crates/ramp-sim -> workspace root -> its parent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/crds")
        .components()
        .collect()
}

/// A sim started in-process on a random loopback port, with a kubeconfig in a temporary
/// directory and a ready `kube::Client`. Dropping it stops the server.
pub struct TestCluster {
    server: Server,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    client: kube::Client,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("url", &self.server.url())
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl TestCluster {
    /// Starts a sim with default settings.
    pub async fn start() -> Result<TestCluster, ClusterError> {
        Self::start_with(StoreConfig::default(), ServerConfig::default()).await
    }

    /// Starts a sim with custom store and server settings (the listen address is forced to a
    /// random loopback port only if left at its default).
    pub async fn start_with(
        store_config: StoreConfig,
        server_config: ServerConfig,
    ) -> Result<TestCluster, ClusterError> {
        let store = Store::with_config(store_config);
        let server = Server::start(store, server_config)
            .await
            .map_err(io("starting the API server"))?;
        let dir = tempfile::Builder::new()
            .prefix("ramp-sim-")
            .tempdir()
            .map_err(io("creating a temporary directory"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .map_err(io(format!("writing {}", kubeconfig.display())))?;
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
            .map_err(|e| ClusterError::Kube(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| ClusterError::Kube(e.to_string()))?;
        let client =
            kube::Client::try_from(config).map_err(|e| ClusterError::Kube(e.to_string()))?;
        Ok(TestCluster {
            server,
            dir,
            kubeconfig,
            client,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Path of the kubeconfig file (inside a temporary directory removed on drop).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The temporary directory (free for the test's own files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client for the sim.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The store (for in-process controllers and direct assertions).
    pub fn store(&self) -> &Store {
        self.server.store()
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Starts a background request stream through the mesh (see [`crate::load`]).
    pub fn start_load(
        &self,
        spec: crate::load::LoadSpec,
    ) -> Result<crate::load::LoadStatus, crate::load::LoadError> {
        self.server.telemetry().start_load(spec)
    }

    /// Stops a request stream; returns what it sent.
    pub fn stop_load(&self, id: &str) -> Result<crate::load::LoadStatus, crate::load::LoadError> {
        self.server.telemetry().stop_load(id)
    }

    /// The running request streams.
    pub fn loads(&self) -> Vec<crate::load::LoadStatus> {
        self.server.telemetry().loads()
    }

    /// Loads CRD (or other) manifests from files or directories.
    pub fn load_crds(&self, paths: &[PathBuf]) -> Result<Vec<String>, ClusterError> {
        load_manifests(self.store(), paths)
    }

    /// A `kubectl` command already pointed at this sim (`--kubeconfig`) with its own
    /// discovery cache (`--cache-dir` in the temporary directory).
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"));
        c
    }

    /// Runs `kubectl ARGS` against this cluster (as [`TestCluster::kubectl`]) with `stdin` fed
    /// in, and returns its output; an error when it cannot start or takes longer than 60 s.
    pub async fn kubectl_output(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> std::io::Result<std::process::Output> {
        use std::process::Stdio;
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::from(self.kubectl());
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            if let Some(input) = stdin {
                pipe.write_all(input.as_bytes()).await?;
            }
            drop(pipe);
        }
        tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
            .await
            .map_err(|_| std::io::Error::other(format!("kubectl {args:?} took longer than 60 s")))?
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
