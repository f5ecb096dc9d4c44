//! `comfyplat models push / ls / rm`: the model files in the platform's models bucket, with
//! AWS credentials and platform.yaml only (no cluster access, no state).
//!
//! Every command resolves the models bucket from platform.yaml and the account (STS
//! GetCallerIdentity; an `account` in platform.yaml must match), and refuses to go on when
//! the bucket does not exist yet (`comfyplat apply` creates it). Only platform.yaml itself is
//! read: the kubeconfig and templates it may name are not needed. Bad input (a missing or
//! wrong DIR, a prefix with `..` or a leading `/`, a symbolic link out of DIR, a file name
//! S3 cannot take) is refused before any API call.
//!
//! `push DIR` walks DIR (hidden entries and ComfyUI's `put_..._here` placeholders skipped),
//! warns about folders ComfyUI does not read models from and extensions it does not list
//! (warnings only: custom nodes read more), lists the bucket under the target prefix,
//! compares every file that has an object of the same size by CRC64NVME (HeadObject with
//! checksum mode, against the local file's, see [`s3_transfer`]), uploads what is new or
//! changed (largest first, at most `--concurrency` requests at once, large files in
//! parts), with `--delete` deletes what DIR does not have, and after any change bumps the
//! generation marker the node agents poll. Keys under `.comfyplat/` are comfyplat's own:
//! never pushed, listed or deleted as models.
//!
//! Progress goes to stderr: bars (bytes, rate, ETA) on a terminal, a line per file and a
//! summary otherwise. What `ls` lists and what `--dry-run` would do go to stdout.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;

use super::{EXIT_INTERRUPTED, Exit};
use crate::adapters::s3_transfer::{
    self, Bucket, Listed, MAX_OBJECT_SIZE, MAX_SINGLE_PUT, MIN_PART_SIZE, PartSettings, Upload,
};
use crate::cli::{Global, ModelsCommand, ModelsLsArgs, ModelsPushArgs, ModelsRmArgs};
use crate::config::{self, BucketPurpose, Platform};
use crate::ui::{Spinner, Style, human_duration};

/// comfyplat's own keys in the models bucket.
pub const RESERVED_PREFIX: &str = ".comfyplat/";
/// The generation marker: one line `<unix-millis>-<8 hex>`, rewritten after every change;
/// the node agents poll it.
pub use crate::model::policy::GENERATION_KEY;

/// The folders of ComfyUI's `models/`: the keys of `folder_names_and_paths` in ComfyUI's
/// `folder_paths.py` (comfyanonymous/ComfyUI, read at commit 00db33f, plus text_encoders,
/// latent_upscale_models, model_patches, audio_encoders, background_removal,
/// frame_interpolation, geometry_estimation, optical_flow and detection, which later versions
/// add), with the second folders some types read: `unet` (diffusion_models), `clip`
/// (text_encoders), `t2i_adapter` (controlnet). Another folder is only a warning.
pub const KNOWN_FOLDERS: &[&str] = &[
    "audio_encoders",
    "background_removal",
    "checkpoints",
    "classifiers",
    "clip",
    "clip_vision",
    "configs",
    "controlnet",
    "detection",
    "diffusers",
    "diffusion_models",
    "embeddings",
    "frame_interpolation",
    "geometry_estimation",
    "gligen",
    "hypernetworks",
    "latent_upscale_models",
    "loras",
    "model_patches",
    "optical_flow",
    "photomaker",
    "style_models",
    "t2i_adapter",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
    "vae_approx",
];

/// The extensions ComfyUI lists model files with (`supported_pt_extensions`), plus `.gguf`
/// (quantised models, read by the common GGUF custom nodes).
pub const MODEL_EXTENSIONS: &[&str] = &[
    ".bin",
    ".ckpt",
    ".gguf",
    ".pkl",
    ".pt",
    ".pt2",
    ".pth",
    ".safetensors",
    ".sft",
];

/// Folders whose files ComfyUI takes whatever their extension (a diffusers model is a
/// folder of JSON, text and weights; classifiers has no extension list).
const ANY_FILE_FOLDERS: &[&str] = &["classifiers", "diffusers"];

/// What goes wrong with `comfyplat models`, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// An argument that cannot be used; refused before any call.
    #[error("{message}")]
    BadInput { message: String, hint: String },
    /// What in DIR cannot be pushed; refused before any call.
    #[error("cannot push `{dir}`:\n  - {}", problems.join("\n  - "))]
    Unpushable { dir: String, problems: Vec<String> },
    #[error(
        "the models bucket `{bucket}` of platform `{platform}` does not exist (account {account}, region {region})"
    )]
    NoBucket {
        bucket: String,
        platform: String,
        account: String,
        region: String,
    },
    #[error("{}", push_failed(uploads, deletes))]
    PushFailed {
        uploads: Vec<String>,
        deletes: Vec<String>,
    },
    #[error("nothing in the bucket matches {}; nothing was deleted", quoted(paths))]
    NoMatch { paths: Vec<String> },
    #[error("{} object(s) could not be deleted: {}", keys.len(), quoted(keys))]
    DeleteFailed { keys: Vec<String> },
}

impl ModelsError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ModelsError::BadInput { hint, .. } => hint.clone(),
            ModelsError::Unpushable { .. } => "copy what a link points to into the folder, or push the folder it lives in (with `--to`); comfyplat never follows a link out of the folder it pushes".to_string(),
            ModelsError::NoBucket { .. } => "create it with `comfyplat apply` (the models bucket is `s3.bucket.models`), then run this again".to_string(),
            ModelsError::PushFailed { .. } => "fix the cause shown above and push again: what was uploaded is unchanged and skipped".to_string(),
            ModelsError::NoMatch { .. } => "`comfyplat models ls` shows what is there; a folder is named by its path (`loras/styles` or `loras/styles/`)".to_string(),
            ModelsError::DeleteFailed { .. } => "run the same `comfyplat models rm` again".to_string(),
        })
    }
}

fn push_failed(uploads: &[String], deletes: &[String]) -> String {
    let mut parts = Vec::new();
    if !uploads.is_empty() {
        parts.push(format!(
            "{} file(s) failed to upload: {}",
            uploads.len(),
            quoted(uploads)
        ));
    }
    if !deletes.is_empty() {
        parts.push(format!(
            "{} object(s) could not be deleted: {}",
            deletes.len(),
            quoted(deletes)
        ));
    }
    parts.join("; ")
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn bad_input(message: String, hint: &str) -> ModelsError {
    ModelsError::BadInput {
        message,
        hint: hint.to_string(),
    }
}

pub async fn run(global: &Global, command: &ModelsCommand, style: Style) -> anyhow::Result<Exit> {
    match command {
        ModelsCommand::Push(args) => push(global, args, style).await,
        ModelsCommand::Ls(args) => ls(global, args).await,
        ModelsCommand::Rm(args) => rm(global, args, style).await,
        ModelsCommand::Status(args) => super::models_status::run(global, args.json).await,
    }
}

// ---------------------------------------------------------------------------------------
// Keys and prefixes
// ---------------------------------------------------------------------------------------

/// Checks a key, a prefix or a path in the bucket given as `what` and returns it without a
/// trailing `/` and whether it had one. Refused: nothing, a leading `/`, an empty, `.` or
/// `..` segment, a control character, comfyplat's own `.comfyplat/`, over 1024 bytes.
pub fn check_key(what: &str, text: &str) -> Result<(String, bool), ModelsError> {
    const HINT: &str = "name keys as `models ls` shows them, relative to the bucket's top: e.g. `loras` or `checkpoints/sdxl.safetensors`";
    let folder = text.ends_with('/');
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    let problem = if trimmed.is_empty() {
        Some("is empty".to_string())
    } else if trimmed.starts_with('/') {
        Some("starts with `/`: keys are relative to the bucket's top".to_string())
    } else if trimmed.chars().any(char::is_control) {
        Some("contains a control character".to_string())
    } else if let Some(segment) = trimmed
        .split('/')
        .find(|s| s.is_empty() || *s == "." || *s == "..")
    {
        Some(if segment.is_empty() {
            "has an empty segment (`//`)".to_string()
        } else {
            format!("has a `{segment}` segment: S3 keys have no relative parts")
        })
    } else if trimmed == RESERVED_PREFIX.trim_end_matches('/')
        || trimmed.starts_with(RESERVED_PREFIX)
    {
        Some(format!(
            "is under `{RESERVED_PREFIX}`, which comfyplat keeps for itself"
        ))
    } else if trimmed.len() > 1024 {
        Some(format!(
            "is {} bytes long; S3 keys have at most 1024",
            trimmed.len()
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(bad_input(format!("{what} `{text}` {problem}"), HINT)),
        None => Ok((trimmed.to_string(), folder)),
    }
}

/// Whether `key` is comfyplat's own, not a model.
fn reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// The models of a listing: comfyplat's own keys left out.
fn models_only(listed: Vec<Listed>) -> Vec<Listed> {
    listed.into_iter().filter(|l| !reserved(&l.key)).collect()
}

/// `a/b/` for `a/b`, `` for nothing.
fn as_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

// ---------------------------------------------------------------------------------------
// Walking DIR
// ---------------------------------------------------------------------------------------

/// One file to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub key: String,
    pub path: PathBuf,
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
}

/// What a walk of DIR found.
#[derive(Debug, Default)]
pub struct Walked {
    /// In key order.
    pub files: Vec<LocalFile>,
    pub warnings: Vec<String>,
    pub hidden: usize,
    pub placeholders: usize,
}

/// Walks `dir` (already checked to be a folder): the files to push under `prefix` (`a/b/`
/// or empty), or every problem that stops the push. Hidden entries are skipped; a symbolic
/// link is followed when it points at a file inside `dir` (a link to a folder inside `dir`
/// is skipped: that folder is pushed under its own name); a link out of `dir` or to
/// nothing is a problem, as is a name that is not UTF-8 or a key too long for S3.
pub fn walk(dir: &Path, prefix: &str) -> Result<Walked, ModelsError> {
    let shown = dir.display().to_string();
    let root = std::fs::canonicalize(dir).map_err(|error| {
        bad_input(
            format!("cannot read `{shown}`: {error}"),
            "name the ComfyUI `models/` folder to push",
        )
    })?;
    let mut walked = Walked::default();
    let mut problems = Vec::new();
    let mut folders: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, relative)) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) => {
                problems.push(format!("cannot read `{}`: {error}", folder.display()));
                continue;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                problems.push(format!(
                    "`{}`: the name is not UTF-8, which S3 keys must be",
                    path.display()
                ));
                continue;
            };
            if name.starts_with('.') {
                walked.hidden += 1;
                continue;
            }
            let relative_name = format!("{relative}{name}");
            let metadata = match std::fs::symlink_metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) => {
                    problems.push(format!("cannot read `{}`: {error}", path.display()));
                    continue;
                }
            };
            let metadata = if metadata.file_type().is_symlink() {
                let target = match std::fs::canonicalize(&path) {
                    Ok(target) => target,
                    Err(_) => {
                        problems.push(format!(
                            "`{}` is a symbolic link to nothing",
                            path.display()
                        ));
                        continue;
                    }
                };
                if !target.starts_with(&root) {
                    problems.push(format!(
                        "`{}` is a symbolic link out of the folder (to `{}`)",
                        path.display(),
                        target.display()
                    ));
                    continue;
                }
                match std::fs::metadata(&target) {
                    Ok(metadata) if metadata.is_dir() => {
                        walked.warnings.push(format!(
                            "`{}` is a symbolic link to a folder inside it: skipped (that folder is pushed under its own name)",
                            path.display()
                        ));
                        continue;
                    }
                    Ok(metadata) => metadata,
                    Err(error) => {
                        problems.push(format!("cannot read `{}`: {error}", path.display()));
                        continue;
                    }
                }
            } else {
                metadata
            };
            if metadata.is_dir() {
                folders.push((path, format!("{relative_name}/")));
                continue;
            }
            if !metadata.is_file() {
                walked.warnings.push(format!(
                    "`{}` is not a regular file: skipped",
                    path.display()
                ));
                continue;
            }
            if name.starts_with("put_") && name.ends_with("_here") {
                walked.placeholders += 1;
                continue;
            }
            let key = format!("{prefix}{relative_name}");
            if key.len() > 1024 {
                problems.push(format!(
                    "`{}` would be a key of {} bytes; S3 keys have at most 1024",
                    path.display(),
                    key.len()
                ));
                continue;
            }
            if metadata.len() > MAX_OBJECT_SIZE {
                problems.push(format!(
                    "`{}` is larger than 5 TiB, the largest object S3 stores",
                    path.display()
                ));
                continue;
            }
            walked.files.push(LocalFile {
                key,
                path,
                size: metadata.len(),
                modified: metadata.modified().ok(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ModelsError::Unpushable {
            dir: shown,
            problems,
        });
    }
    walked.files.sort_by(|a, b| a.key.cmp(&b.key));
    let dir_name = root.file_name().and_then(|n| n.to_str()).unwrap_or("");
    walked.warnings.extend(layout_warnings(
        walked.files.iter().map(|f| f.key.as_str()),
        (prefix.is_empty() && KNOWN_FOLDERS.contains(&dir_name)).then_some(dir_name),
    ));
    Ok(walked)
}

/// Warnings about keys ComfyUI would not list: files in no folder, folders it does not read
/// models from, extensions it does not list for a folder. `pushed_folder` is DIR's name
/// when it is itself a model folder pushed without `--to`.
pub fn layout_warnings<'a>(
    keys: impl Iterator<Item = &'a str>,
    pushed_folder: Option<&str>,
) -> Vec<String> {
    let mut loose = Vec::new();
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    let mut odd: BTreeMap<&str, (BTreeSet<String>, Vec<&str>)> = BTreeMap::new();
    for key in keys {
        let Some((top, rest)) = key.split_once('/') else {
            loose.push(key);
            continue;
        };
        if !KNOWN_FOLDERS.contains(&top) {
            *unknown.entry(top).or_default() += 1;
            continue;
        }
        if ANY_FILE_FOLDERS.contains(&top) {
            continue;
        }
        let extension = extension(rest);
        let listed = if top == "configs" {
            extension == ".yaml"
        } else {
            MODEL_EXTENSIONS.contains(&extension.as_str())
        };
        if !listed {
            let (extensions, files) = odd.entry(top).or_default();
            extensions.insert(if extension.is_empty() {
                "no extension".to_string()
            } else {
                format!("`{extension}`")
            });
            files.push(key);
        }
    }
    let mut warnings = Vec::new();
    if !loose.is_empty() {
        let mut text = format!(
            "{} file(s) at the top are in no model folder, so ComfyUI lists none of them: {}",
            loose.len(),
            examples(&loose)
        );
        if let Some(folder) = pushed_folder {
            text.push_str(&format!(
                "; to push the files of a `{folder}` folder, add `--to {folder}`"
            ));
        }
        warnings.push(text);
    }
    for (folder, count) in unknown {
        warnings.push(format!(
            "`{folder}/` ({count} file(s)) is not a folder ComfyUI reads models from; uploaded anyway (a custom node may read it)"
        ));
    }
    for (folder, (extensions, files)) in odd {
        let extensions: Vec<String> = extensions.into_iter().collect();
        warnings.push(format!(
            "`{folder}/`: {} file(s) with {} ComfyUI does not list there, e.g. {}; uploaded anyway",
            files.len(),
            extensions.join(", "),
            examples(&files)
        ));
    }
    warnings
}

fn examples(keys: &[&str]) -> String {
    let mut text = keys
        .iter()
        .take(3)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > 3 {
        text.push_str(&format!(" and {} more", keys.len() - 3));
    }
    text
}

/// `.safetensors` of `a/b.safetensors`, lowercase; empty without one.
fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(at) if at > 0 => name[at..].to_ascii_lowercase(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------

/// platform.yaml, read and checked. Only the file: the kubeconfig and templates it may
/// name are for the cluster, which these commands never reach.
fn open_platform(global: &Global) -> anyhow::Result<Platform> {
    let bytes = config::read_file(&global.file)?;
    Ok(config::from_bytes(&global.file, &bytes)?)
}

/// The name of the platform's models bucket in `account`.
pub fn models_bucket(platform: &Platform, account: &str) -> anyhow::Result<String> {
    let Some(models) = platform
        .buckets
        .iter()
        .find(|b| b.purpose == BucketPurpose::Models)
    else {
        anyhow::bail!("platform `{}` has no models bucket", platform.name);
    };
    Ok(platform.bucket_name(models, account))
}

/// The platform's models bucket, after the account guard; refused when it does not exist.
async fn open_bucket(platform: &Platform) -> anyhow::Result<Bucket> {
    let (aws, caller) = super::session::connect_account(platform).await?;
    let name = models_bucket(platform, &caller.account)?;
    let bucket = Bucket::new(&aws, &name, super::session::waiting_notify());
    if !bucket.exists().await? {
        return Err(ModelsError::NoBucket {
            bucket: name,
            platform: platform.name.clone(),
            account: caller.account.clone(),
            region: platform.region.clone(),
        }
        .into());
    }
    Ok(bucket)
}

/// A new generation marker: `<unix-millis>-<8 hex random>`.
pub fn new_generation() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{millis}-{:08x}", fastrand::u32(..))
}

/// Rewrites the generation marker; returns the new generation.
async fn bump_generation(bucket: &Bucket) -> anyhow::Result<String> {
    let generation = new_generation();
    bucket
        .put_small(GENERATION_KEY, format!("{generation}\n").into_bytes())
        .await?;
    Ok(generation)
}

// ---------------------------------------------------------------------------------------
// push
// ---------------------------------------------------------------------------------------

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    New,
    Changed,
    /// Same size, and the object has no full-object CRC64NVME to compare with.
    NoChecksum,
}

impl Why {
    fn text(self) -> &'static str {
        match self {
            Why::New => "new",
            Why::Changed => "changed",
            Why::NoChecksum => "no checksum to compare",
        }
    }
}

async fn push(global: &Global, args: &ModelsPushArgs, style: Style) -> anyhow::Result<Exit> {
    let prefix = match &args.to {
        Some(to) => as_prefix(&check_key("--to", to)?.0),
        None => String::new(),
    };
    let settings = part_settings(args)?;
    check_dir(&args.dir)?;
    let platform = open_platform(global)?;
    let walked = walk(&args.dir, &prefix)?;
    for warning in &walked.warnings {
        eprintln!("{} {warning}", style.yellow("warning:"));
    }
    let bucket = open_bucket(&platform).await?;
    let concurrency = usize::from(args.concurrency);
    let listed = {
        let _spinner = Spinner::start("listing the bucket", global.quiet);
        models_only(bucket.list(&prefix).await?)
    };
    let plan = plan_push(
        &bucket,
        &walked,
        &listed,
        &settings,
        concurrency,
        args.delete,
        global.quiet,
    )
    .await;
    // Failures met while comparing, not printed yet.
    report_failures(&plan.failures, style);
    let mut failed: Vec<String> = plan.failures.iter().map(|(key, _)| key.clone()).collect();
    if args.dry_run {
        print!("{}", render_dry_run(&plan, &bucket.name));
        return finish_push(failed, Vec::new());
    }

    let total: u64 = plan.uploads.iter().map(|(u, _)| u.size).sum();
    let reporter = Reporter::new(total, global.quiet, style);
    let changed = AtomicUsize::new(0);
    let started = Instant::now();
    let work = execute_push(
        &bucket,
        &plan,
        concurrency,
        &reporter,
        &changed,
        global.quiet,
    );
    tokio::pin!(work);
    let done = tokio::select! {
        done = &mut work => done,
        _ = tokio::signal::ctrl_c() => {
            reporter.finish();
            eprintln!("interrupted: aborting the uploads in flight");
            for (key, upload_id, error) in bucket.abort_all().await {
                eprintln!(
                    "{} the incomplete upload `{upload_id}` of `{key}` could not be aborted: {}",
                    style.red("error:"),
                    crate::errors::chain(&error)
                );
            }
            if changed.load(Ordering::Relaxed) > 0 {
                let generation = bump_generation(&bucket).await?;
                eprintln!("what was uploaded before the interruption is generation {generation}");
            }
            return Ok(EXIT_INTERRUPTED);
        }
    };
    reporter.finish();
    // Upload failures were printed as they happened; deletes' are printed here.
    report_failures(&done.failed_deletes, style);
    failed.extend(done.failed_uploads);
    let failed_deletes: Vec<String> = done
        .failed_deletes
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let generation = if done.uploaded + done.deleted > 0 {
        Some(bump_generation(&bucket).await?)
    } else {
        None
    };
    eprintln!(
        "{}",
        push_summary(&PushSummary {
            bucket: &bucket.name,
            uploaded: done.uploaded,
            uploaded_bytes: done.uploaded_bytes,
            deleted: done.deleted,
            deleted_bytes: done.deleted_bytes,
            unchanged: plan.unchanged,
            elapsed: started.elapsed(),
            generation: generation.as_deref(),
            skipped_hidden: walked.hidden,
        })
    );
    finish_push(failed, failed_deletes)
}

/// Exit 0, or the error naming every file and object that failed.
fn finish_push(uploads: Vec<String>, deletes: Vec<String>) -> anyhow::Result<Exit> {
    if uploads.is_empty() && deletes.is_empty() {
        Ok(0)
    } else {
        Err(ModelsError::PushFailed { uploads, deletes }.into())
    }
}

/// DIR must be a folder that can be read.
fn check_dir(dir: &Path) -> Result<(), ModelsError> {
    match std::fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(bad_input(
            format!("`{}` is a file, not a folder", dir.display()),
            "name the ComfyUI `models/` folder (the one holding checkpoints/, loras/, ...), or a folder of one kind with `--to`, e.g. `--to loras`",
        )),
        Err(error) => Err(bad_input(
            format!("cannot read `{}`: {error}", dir.display()),
            "name the ComfyUI `models/` folder to push",
        )),
    }
}

/// What a push does: uploads (largest first) with why, deletes, how many files are
/// unchanged, and the files that could not be compared.
struct PushPlan<'a> {
    uploads: Vec<(Upload, Why)>,
    deletes: Vec<&'a Listed>,
    unchanged: usize,
    failures: Vec<(String, String)>,
}

/// Files without an object of their size are uploaded; those with one are compared by
/// checksum (concurrently); with `delete`, objects DIR does not have are deleted.
async fn plan_push<'a>(
    bucket: &Bucket,
    walked: &Walked,
    listed: &'a [Listed],
    settings: &PartSettings,
    concurrency: usize,
    delete: bool,
    quiet: bool,
) -> PushPlan<'a> {
    let remote: BTreeMap<&str, u64> = listed.iter().map(|l| (l.key.as_str(), l.size)).collect();
    let (same_size, other): (Vec<&LocalFile>, Vec<&LocalFile>) = walked
        .files
        .iter()
        .partition(|f| remote.get(f.key.as_str()) == Some(&f.size));
    let mut plan = PushPlan {
        uploads: other
            .into_iter()
            .map(|file| {
                let why = if remote.contains_key(file.key.as_str()) {
                    Why::Changed
                } else {
                    Why::New
                };
                (to_upload(file, settings, None), why)
            })
            .collect(),
        deletes: Vec::new(),
        unchanged: 0,
        failures: Vec::new(),
    };
    let _spinner = Spinner::start(
        &format!("comparing {} file(s) with the bucket", same_size.len()),
        quiet || same_size.is_empty(),
    );
    let compared: Vec<_> = stream::iter(same_size)
        .map(|file| compare(bucket, file, settings))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (file, result) in compared {
        match result {
            Ok(Compared::Same) => plan.unchanged += 1,
            Ok(Compared::Differs(crcs, why)) => {
                plan.uploads.push((to_upload(file, settings, crcs), why))
            }
            Err(error) => plan.failures.push((file.key.clone(), error)),
        }
    }
    if delete {
        let local: BTreeSet<&str> = walked.files.iter().map(|f| f.key.as_str()).collect();
        plan.deletes = listed
            .iter()
            .filter(|l| !local.contains(l.key.as_str()))
            .collect();
    }
    // Largest first: the long transfers start early and the small ones fill in around them.
    plan.uploads
        .sort_by(|(a, _), (b, _)| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));
    plan.failures.sort();
    plan
}

/// What the uploads and deletes of a push did.
struct Done {
    uploaded: usize,
    uploaded_bytes: u64,
    failed_uploads: Vec<String>,
    deleted: usize,
    deleted_bytes: u64,
    failed_deletes: Vec<(String, String)>,
}

/// Runs the uploads (at most `concurrency` requests at once), then the deletes; counts each
/// change in `changed` as it completes (an interruption bumps the generation for them).
async fn execute_push(
    bucket: &Bucket,
    plan: &PushPlan<'_>,
    concurrency: usize,
    reporter: &Reporter,
    changed: &AtomicUsize,
    quiet: bool,
) -> Done {
    let slots = Semaphore::new(concurrency);
    let results: Vec<(&Upload, bool)> = stream::iter(plan.uploads.iter().map(|(upload, _)| upload))
        .map(|upload| {
            let (progress, bar) = reporter.start(&upload.key, upload.size);
            let slots = &slots;
            async move {
                let result = bucket.upload(upload, slots, progress).await;
                if result.is_ok() {
                    changed.fetch_add(1, Ordering::Relaxed);
                }
                reporter.finished(upload, bar, &result);
                (upload, result.is_ok())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let keys: Vec<String> = plan.deletes.iter().map(|l| l.key.clone()).collect();
    let failed_deletes = if keys.is_empty() {
        Vec::new()
    } else {
        bucket.delete(&keys).await
    };
    let failed_keys: BTreeSet<&str> = failed_deletes.iter().map(|(k, _)| k.as_str()).collect();
    let deleted: Vec<&Listed> = plan
        .deletes
        .iter()
        .copied()
        .filter(|l| !failed_keys.contains(l.key.as_str()))
        .collect();
    changed.fetch_add(deleted.len(), Ordering::Relaxed);
    if !quiet {
        for listed in &deleted {
            reporter.line(format!("deleted {}", listed.key));
        }
    }
    let mut failed_uploads: Vec<String> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(upload, _)| upload.key.clone())
        .collect();
    failed_uploads.sort();
    Done {
        uploaded: results.iter().filter(|(_, ok)| *ok).count(),
        uploaded_bytes: results
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(upload, _)| upload.size)
            .sum(),
        failed_uploads,
        deleted: deleted.len(),
        deleted_bytes: deleted.iter().map(|l| l.size).sum(),
        failed_deletes,
    }
}

fn failure_text(error: &s3_transfer::TransferError) -> String {
    let mut text = crate::errors::chain(error);
    if let Some(hint) = error.hint() {
        text.push_str(&format!(" ({hint})"));
    }
    text
}

fn report_failures(failures: &[(String, String)], style: Style) {
    for (key, why) in failures {
        eprintln!("{} {key}: {why}", style.red("failed:"));
    }
}

/// The part settings of `--multipart-threshold` / `--part-size`, checked.
fn part_settings(args: &ModelsPushArgs) -> Result<PartSettings, ModelsError> {
    const HINT: &str = "leave COMFYPLAT_PART_SIZE and COMFYPLAT_MULTIPART_THRESHOLD unset for the defaults (16MiB parts from 64MiB)";
    if args.part_size < MIN_PART_SIZE || args.part_size > s3_transfer::MAX_PART_SIZE {
        return Err(bad_input(
            format!(
                "the part size {} is outside S3's 5 MiB to 5 GiB",
                human_size(args.part_size)
            ),
            HINT,
        ));
    }
    if args.multipart_threshold > MAX_SINGLE_PUT {
        return Err(bad_input(
            format!(
                "the multipart threshold {} is above 5 GiB, the largest single upload S3 takes",
                human_size(args.multipart_threshold)
            ),
            HINT,
        ));
    }
    Ok(PartSettings {
        threshold: args.multipart_threshold,
        part_size: args.part_size,
    })
}

fn to_upload(file: &LocalFile, settings: &PartSettings, known_crcs: Option<Vec<u64>>) -> Upload {
    Upload {
        key: file.key.clone(),
        path: file.path.clone(),
        size: file.size,
        modified: file.modified,
        part_size: settings.part_size_for(file.size),
        known_crcs,
    }
}

enum Compared {
    Same,
    /// With the parts' CRCs, when they were computed.
    Differs(Option<Vec<u64>>, Why),
}

/// Compares a file with the object of the same size: HeadObject's CRC64NVME against the
/// file's (computed part by part, as it would be uploaded).
async fn compare<'a>(
    bucket: &Bucket,
    file: &'a LocalFile,
    settings: &PartSettings,
) -> (&'a LocalFile, Result<Compared, String>) {
    let result = async {
        let Some(remote) = bucket
            .head(&file.key)
            .await
            .map_err(|e| crate::errors::chain(&e))?
        else {
            return Ok(Compared::Differs(None, Why::New));
        };
        let Some(theirs) = remote.crc64nvme else {
            return Ok(Compared::Differs(None, Why::NoChecksum));
        };
        if remote.size != file.size {
            return Ok(Compared::Differs(None, Why::Changed));
        }
        let ranges = s3_transfer::ranges(file.size, settings.part_size_for(file.size));
        let crcs = s3_transfer::crc_of_ranges(&file.path, &ranges)
            .await
            .map_err(|e| format!("failed to read `{}`: {e}", file.path.display()))?;
        let parts: Vec<(u64, u64)> = crcs
            .iter()
            .zip(&ranges)
            .map(|(crc, (_, length))| (*crc, *length))
            .collect();
        if s3_transfer::encode_crc(s3_transfer::combine_parts(&parts)) == theirs {
            Ok(Compared::Same)
        } else {
            Ok(Compared::Differs(Some(crcs), Why::Changed))
        }
    }
    .await;
    (file, result)
}

fn render_dry_run(plan: &PushPlan, bucket: &str) -> String {
    let (uploads, deletes, unchanged) = (&plan.uploads, &plan.deletes, plan.unchanged);
    let total: u64 = uploads.iter().map(|(u, _)| u.size).sum();
    let mut out = format!(
        "dry run: would upload {} file(s) ({}) and delete {} object(s) in `{bucket}`; {unchanged} file(s) unchanged\n",
        uploads.len(),
        human_size(total),
        deletes.len()
    );
    let mut lines: Vec<(String, String, String)> = Vec::new();
    let mut sorted: Vec<&(Upload, Why)> = uploads.iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.key.cmp(&b.key));
    for (upload, why) in sorted {
        let symbol = if *why == Why::New { "+" } else { "~" };
        let how = match upload.part_size {
            Some(part_size) => format!(
                "{}, in {} parts",
                why.text(),
                upload.size.div_ceil(part_size)
            ),
            None => why.text().to_string(),
        };
        lines.push((
            format!("  {symbol} {}", upload.key),
            human_size(upload.size),
            how,
        ));
    }
    for listed in deletes {
        lines.push((
            format!("  - {}", listed.key),
            human_size(listed.size),
            "not in the folder".to_string(),
        ));
    }
    out.push_str(&columns(&lines));
    out
}

/// Lines of (name, size, note): names padded to one width, sizes right-aligned after them.
fn columns(lines: &[(String, String, String)]) -> String {
    let width = lines
        .iter()
        .map(|(n, _, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let size_width = lines.iter().map(|(_, s, _)| s.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, size, note) in lines {
        let pad = width - name.chars().count();
        let line = format!("{name}{:pad$}  {size:>size_width$}  {note}", "");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

struct PushSummary<'a> {
    bucket: &'a str,
    uploaded: usize,
    uploaded_bytes: u64,
    deleted: usize,
    deleted_bytes: u64,
    unchanged: usize,
    elapsed: Duration,
    generation: Option<&'a str>,
    skipped_hidden: usize,
}

fn push_summary(summary: &PushSummary) -> String {
    let mut parts = Vec::new();
    if summary.uploaded > 0 {
        let seconds = summary.elapsed.as_secs_f64().max(0.001);
        parts.push(format!(
            "uploaded {} file(s) ({}) in {} ({}/s)",
            summary.uploaded,
            human_size(summary.uploaded_bytes),
            human_duration(summary.elapsed),
            human_size((summary.uploaded_bytes as f64 / seconds) as u64)
        ));
    }
    if summary.deleted > 0 {
        parts.push(format!(
            "deleted {} object(s) ({})",
            summary.deleted,
            human_size(summary.deleted_bytes)
        ));
    }
    parts.push(format!("{} file(s) unchanged", summary.unchanged));
    if summary.skipped_hidden > 0 {
        parts.push(format!(
            "{} hidden file(s) or folder(s) skipped",
            summary.skipped_hidden
        ));
    }
    let mut text = format!("`{}`: {}", summary.bucket, parts.join(", "));
    match summary.generation {
        Some(generation) => text.push_str(&format!("; generation {generation}")),
        None if summary.uploaded + summary.deleted == 0 => {
            text.push_str("; nothing to do, the bucket is up to date")
        }
        None => {}
    }
    text
}

// ---------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------

/// Bytes, rate and ETA bars on a terminal; a line per file otherwise; failures only when
/// quiet.
struct Reporter {
    bars: Option<(MultiProgress, ProgressBar)>,
    quiet: bool,
    style: Style,
}

impl Reporter {
    fn new(total: u64, quiet: bool, style: Style) -> Reporter {
        let bars = (!quiet && total > 0 && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            overall.set_prefix("uploading");
            overall.enable_steady_tick(Duration::from_millis(200));
            (multi, overall)
        });
        Reporter { bars, quiet, style }
    }

    /// The progress callback of one upload, and its bar on a terminal.
    fn start(&self, key: &str, size: u64) -> (s3_transfer::Progress, Option<ProgressBar>) {
        match &self.bars {
            Some((multi, overall)) => {
                let bar = multi.insert_before(overall, ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {wide_msg} {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(key.to_string());
                let (file, overall) = (bar.clone(), overall.clone());
                let progress: s3_transfer::Progress = Arc::new(move |delta: i64| {
                    if delta >= 0 {
                        file.inc(delta as u64);
                        overall.inc(delta as u64);
                    } else {
                        file.dec(delta.unsigned_abs());
                        overall.dec(delta.unsigned_abs());
                    }
                });
                (progress, Some(bar))
            }
            None => (Arc::new(|_| {}), None),
        }
    }

    fn finished(
        &self,
        upload: &Upload,
        bar: Option<ProgressBar>,
        result: &Result<s3_transfer::Uploaded, s3_transfer::TransferError>,
    ) {
        if let (Some(bar), Some((multi, _))) = (bar, &self.bars) {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
        match result {
            Ok(uploaded) if !self.quiet => {
                let parts = if uploaded.parts > 0 {
                    format!(", {} parts", uploaded.parts)
                } else {
                    String::new()
                };
                self.line(format!(
                    "uploaded {} ({}{parts})",
                    upload.key,
                    human_size(upload.size)
                ));
            }
            Ok(_) => {}
            Err(error) => self.line(format!(
                "{} {}: {}",
                self.style.red("failed:"),
                upload.key,
                failure_text(error)
            )),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some((multi, overall)) = &self.bars {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

// ---------------------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------------------

async fn ls(global: &Global, args: &ModelsLsArgs) -> anyhow::Result<Exit> {
    let prefix = match &args.prefix {
        Some(prefix) => {
            let (key, folder) = check_key("PREFIX", prefix)?;
            if folder { as_prefix(&key) } else { key }
        }
        None => String::new(),
    };
    let platform = open_platform(global)?;
    let bucket = open_bucket(&platform).await?;
    let objects = models_only(bucket.list(&prefix).await?);
    if objects.is_empty() {
        eprintln!(
            "no models in `{}`{}",
            bucket.name,
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" under `{prefix}`")
            }
        );
        return Ok(0);
    }
    print!("{}", render_tree(&objects));
    Ok(0)
}

#[derive(Default)]
struct Folder<'a> {
    folders: BTreeMap<&'a str, Folder<'a>>,
    files: Vec<(&'a str, u64)>,
    size: u64,
    count: usize,
}

/// The objects as a tree: folders (with their size and number of files) before files, each
/// level sorted, sizes in one column; then the total.
pub fn render_tree(objects: &[Listed]) -> String {
    let mut root = Folder::default();
    for object in objects {
        let mut folder = &mut root;
        folder.size += object.size;
        folder.count += 1;
        let mut segments: Vec<&str> = object.key.split('/').collect();
        let name = segments.pop().unwrap_or_default();
        for segment in segments {
            folder = folder.folders.entry(segment).or_default();
            folder.size += object.size;
            folder.count += 1;
        }
        folder.files.push((name, object.size));
    }
    let mut lines: Vec<(String, String, String)> = Vec::new();
    fn walk_tree(folder: &Folder, depth: usize, lines: &mut Vec<(String, String, String)>) {
        let indent = "  ".repeat(depth);
        for (name, sub) in &folder.folders {
            lines.push((
                format!("{indent}{name}/"),
                human_size(sub.size),
                format!(
                    "{} file{}",
                    sub.count,
                    if sub.count == 1 { "" } else { "s" }
                ),
            ));
            walk_tree(sub, depth + 1, lines);
        }
        for (name, size) in &folder.files {
            lines.push((format!("{indent}{name}"), human_size(*size), String::new()));
        }
    }
    walk_tree(&root, 0, &mut lines);
    let mut out = columns(&lines);
    out.push_str(&format!(
        "{} file{}, {} in total\n",
        root.count,
        if root.count == 1 { "" } else { "s" },
        human_size(root.size)
    ));
    out
}

/// A size as people read it, in binary units: `512 B`, `1.5 KiB`, `6.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

// ---------------------------------------------------------------------------------------
// rm
// ---------------------------------------------------------------------------------------

/// The objects a PATH of `rm` names: the object of that very key; else (or with a trailing
/// `/`) every object under it as a folder.
pub fn matches<'a>(path: &str, folder: bool, listed: &'a [Listed]) -> Vec<&'a Listed> {
    if !folder && let Some(object) = listed.iter().find(|l| l.key == path) {
        return vec![object];
    }
    let under = format!("{path}/");
    listed
        .iter()
        .filter(|l| l.key.starts_with(&under))
        .collect()
}

async fn rm(global: &Global, args: &ModelsRmArgs, style: Style) -> anyhow::Result<Exit> {
    let paths: Vec<(String, bool)> = args
        .paths
        .iter()
        .map(|path| check_key("PATH", path))
        .collect::<Result<_, _>>()?;
    let platform = open_platform(global)?;
    let bucket = open_bucket(&platform).await?;
    let mut chosen: BTreeMap<String, u64> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for ((path, folder), given) in paths.iter().zip(&args.paths) {
        let listed = models_only(bucket.list(path).await?);
        let found = matches(path, *folder, &listed);
        if found.is_empty() {
            unmatched.push(given.clone());
        }
        chosen.extend(found.into_iter().map(|l| (l.key.clone(), l.size)));
    }
    if !unmatched.is_empty() {
        return Err(ModelsError::NoMatch { paths: unmatched }.into());
    }
    let total: u64 = chosen.values().sum();
    if args.dry_run {
        println!(
            "dry run: would delete {} object(s) ({}) from `{}`:",
            chosen.len(),
            human_size(total),
            bucket.name
        );
        for (key, size) in &chosen {
            println!("  - {key}  {}", human_size(*size));
        }
        return Ok(0);
    }
    let keys: Vec<String> = chosen.keys().cloned().collect();
    let failed = bucket.delete(&keys).await;
    let failed_keys: BTreeSet<&str> = failed.iter().map(|(k, _)| k.as_str()).collect();
    let deleted: Vec<(&String, &u64)> = chosen
        .iter()
        .filter(|(k, _)| !failed_keys.contains(k.as_str()))
        .collect();
    if !global.quiet {
        for (key, _) in &deleted {
            eprintln!("deleted {key}");
        }
    }
    if !deleted.is_empty() {
        let generation = bump_generation(&bucket).await?;
        let bytes: u64 = deleted.iter().map(|(_, size)| **size).sum();
        eprintln!(
            "`{}`: deleted {} object(s) ({}); generation {generation}",
            bucket.name,
            deleted.len(),
            human_size(bytes)
        );
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        report_failures(&failed, style);
        Err(ModelsError::DeleteFailed {
            keys: failed.into_iter().map(|(key, _)| key).collect(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(items: &[(&str, u64)]) -> Vec<Listed> {
        items
            .iter()
            .map(|(key, size)| Listed {
                key: key.to_string(),
                size: *size,
            })
            .collect()
    }

    #[test]
    fn keys_and_prefixes_are_checked_before_any_call() {
        assert_eq!(
            check_key("--to", "loras").expect("fine"),
            ("loras".to_string(), false)
        );
        assert_eq!(
            check_key("--to", "loras/styles/").expect("fine"),
            ("loras/styles".to_string(), true)
        );
        for (bad, says) in [
            ("", "is empty"),
            ("/", "is empty"),
            ("/loras", "starts with `/`"),
            ("loras/../vae", "`..` segment"),
            ("./loras", "`.` segment"),
            ("loras//x", "empty segment"),
            (".comfyplat", "keeps for itself"),
            (".comfyplat/generation", "keeps for itself"),
            ("a\u{7}b", "control character"),
        ] {
            let error = check_key("--to", bad).expect_err(bad).to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
        let long = "a".repeat(1025);
        assert!(check_key("PATH", &long).is_err());
        // A name that merely starts like comfyplat's folder is a model folder like any other.
        assert!(check_key("PATH", ".comfyplatish/x").is_ok());
    }

    #[test]
    fn the_walk_keeps_the_layout_skips_hidden_and_placeholders_and_refuses_links_out() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let models = dir.path().join("models");
        for folder in ["checkpoints", "loras/styles", ".cache", "vae"] {
            std::fs::create_dir_all(models.join(folder)).expect("mkdir");
        }
        std::fs::write(models.join("checkpoints/sd.safetensors"), b"weights").expect("write");
        std::fs::write(models.join("checkpoints/put_checkpoints_here"), b"").expect("write");
        std::fs::write(models.join("loras/styles/ink.safetensors"), b"ink").expect("write");
        std::fs::write(models.join("loras/.DS_Store"), b"mac").expect("write");
        std::fs::write(models.join(".cache/x"), b"cache").expect("write");
        std::os::unix::fs::symlink(
            models.join("checkpoints/sd.safetensors"),
            models.join("vae/linked.safetensors"),
        )
        .expect("link");
        std::os::unix::fs::symlink(models.join("loras"), models.join("vae/loras-again"))
            .expect("link");

        let walked = walk(&models, "").expect("walk");
        let keys: Vec<&str> = walked.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "checkpoints/sd.safetensors",
                "loras/styles/ink.safetensors",
                "vae/linked.safetensors"
            ]
        );
        assert_eq!(walked.files[2].size, 7);
        assert_eq!((walked.hidden, walked.placeholders), (2, 1));
        assert!(
            walked
                .warnings
                .iter()
                .any(|w| w.contains("vae/loras-again") && w.contains("skipped")),
            "{:?}",
            walked.warnings
        );
        let under = walk(&models.join("loras"), "loras/").expect("walk");
        assert_eq!(under.files[0].key, "loras/styles/ink.safetensors");

        let outside = dir.path().join("elsewhere.safetensors");
        std::fs::write(&outside, b"x").expect("write");
        std::os::unix::fs::symlink(&outside, models.join("loras/out.safetensors")).expect("link");
        std::os::unix::fs::symlink(
            dir.path().join("gone"),
            models.join("loras/gone.safetensors"),
        )
        .expect("link");
        let error = walk(&models, "").expect_err("links out").to_string();
        assert!(
            error.contains("out.safetensors` is a symbolic link out of the folder"),
            "{error}"
        );
        assert!(
            error.contains("gone.safetensors` is a symbolic link to nothing"),
            "{error}"
        );
    }

    #[test]
    fn unknown_folders_and_extensions_are_warnings() {
        let keys = [
            "checkpoints/a.safetensors",
            "checkpoints/notes.txt",
            "checkpoints/b.GGUF",
            "configs/v1.yaml",
            "configs/v1.json",
            "diffusers/sdxl/model_index.json",
            "my-stuff/x.safetensors",
            "my-stuff/y.bin",
            "loose.safetensors",
        ];
        let warnings = layout_warnings(keys.into_iter(), Some("loras"));
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].contains("`loose.safetensors`") && warnings[0].contains("--to loras"));
        assert!(warnings[1].starts_with("`my-stuff/` (2 file(s)) is not a folder ComfyUI reads"));
        assert!(
            warnings[2].starts_with("`checkpoints/`: 1 file(s) with `.txt`"),
            "{}",
            warnings[2]
        );
        assert!(warnings[3].starts_with("`configs/`: 1 file(s) with `.json`"));
        assert!(layout_warnings(["loras/a.safetensors"].into_iter(), None).is_empty());
    }

    #[test]
    fn the_tree_has_sizes_per_folder_and_the_total() {
        let objects = listed(&[
            ("checkpoints/sd.safetensors", 3 * 1024 * 1024 * 1024),
            ("loras/styles/ink.safetensors", 150 * 1024 * 1024),
            ("loras/a.safetensors", 512),
            ("vae/v.pt", 1536),
        ]);
        let tree = render_tree(&objects);
        assert_eq!(
            tree,
            "\
checkpoints/           3.0 GiB  1 file
  sd.safetensors       3.0 GiB
loras/               150.0 MiB  2 files
  styles/            150.0 MiB  1 file
    ink.safetensors  150.0 MiB
  a.safetensors          512 B
vae/                   1.5 KiB  1 file
  v.pt                 1.5 KiB
4 files, 3.1 GiB in total
"
        );
    }

    #[test]
    fn rm_takes_an_object_or_a_folder() {
        let objects = listed(&[
            ("loras/ink", 1),
            ("loras/ink/a.safetensors", 2),
            ("loras/ink/b.safetensors", 3),
            ("loras/inkwell.safetensors", 4),
        ]);
        let keys = |path, folder| -> Vec<String> {
            matches(path, folder, &objects)
                .into_iter()
                .map(|l| l.key.clone())
                .collect()
        };
        assert_eq!(keys("loras/ink", false), ["loras/ink"]);
        assert_eq!(
            keys("loras/ink", true),
            ["loras/ink/a.safetensors", "loras/ink/b.safetensors"]
        );
        assert_eq!(keys("loras", false).len(), 4);
        assert!(keys("lora", false).is_empty());
    }

    #[test]
    fn sizes_and_generations_read_as_documented() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(20 * 1024 * 1024), "20.0 MiB");
        let generation = new_generation();
        let (millis, random) = generation.split_once('-').expect("two parts");
        assert!(millis.parse::<u64>().expect("millis") > 1_700_000_000_000);
        assert_eq!(random.len(), 8);
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
