//! Object transfers to the models bucket (`comfyplat models`): listing, checksums, single and
//! multipart uploads, deletes, the generation marker.
//!
//! **Integrity.** Every object comfyplat writes carries a CRC64NVME checksum of its whole
//! content: a single PutObject sends it (S3 checks it against the bytes it receives and
//! stores it), a multipart upload is created with `ChecksumType::FullObject`, sends each
//! part's CRC64NVME with the part and the whole file's with CompleteMultipartUpload (S3
//! checks the parts, combines them and checks the result). So HeadObject with
//! `ChecksumMode::Enabled` answers the same value for a file whatever the part size it was
//! uploaded with, and a local file is unchanged when its size and CRC64NVME equal the
//! object's. Values are base64 of the 8 big-endian bytes, as S3 writes them. The CRCs are
//! computed with `crc-fast`, the crate the SDK's own checksums use (`aws-smithy-checksums`);
//! a file's CRC is the combination of its parts' ([`combine`]), so parts are hashed
//! independently, each by the task that uploads it.
//!
//! **Memory stays flat whatever the file size.** Nothing reads a whole file: hashing reads
//! [`READ_BUFFER`] at a time, and every request body streams its byte range from the file
//! (the SDK's path body, re-opened on a retry) through a counter that reports progress.
//! In flight at once: at most the caller's number of request slots.
//!
//! **Time limits.** Listing, HeadObject, deletes and the marker use the project's client
//! ([`Aws`], [`super::AWS_CALL_TIMEOUT`] and the rest). Those limits are too short for a
//! request that carries hundreds of MiB: the SDK's "first byte" timeout covers sending the
//! whole body. Uploads use a second client from the same configuration with the connect
//! limit only, and each upload request gets an attempt limit sized by its bytes
//! ([`transfer_timeout`]: 60 s plus 64 KiB/s), with the SDK's stalled-stream protection
//! failing an upload that makes no progress for [`STALL_GRACE`].
//!
//! **No orphaned uploads.** A multipart upload whose part fails (after the SDK's retries),
//! whose file changed meanwhile, or that is interrupted ([`Bucket::abort_all`]) is aborted;
//! a failed abort is part of the error, with its upload id.
//!
//! **Why not a transfer-manager crate.** `aws-sdk-s3-transfer-manager` (0.3.1, AWS labs) is
//! a developer preview "NOT recommended for production"; it requires aws-sdk-s3 ≥ 1.146 (a
//! bump of all eight SDK clients and the smithy runtime in Cargo.lock), and pulls 74 more
//! crates, among them second copies of six `aws-smithy-*` crates, the hyper 0.14 /
//! rustls 0.21 / h2 0.3 stack and the hickory DNS resolver; built alone (dev profile) it takes
//! 1 min 42 s on this 2-core machine, before the rebuild of the other SDK clients at their new versions.
//! It does support full-object CRC64NVME and streaming from a path. What comfyplat needs on
//! top of the SDK is small (a part plan, a CRC per part, bounded concurrency, abort on
//! failure), so it is written here against the aws-sdk-s3 the project already links.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll as TaskPoll};
use std::time::Duration;

use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::{ByteStream, Length, SdkBody};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, Delete,
    ObjectIdentifier,
};
use base64::Engine;
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use super::{ApiError, Aws, ErrorClass, aws_error, call_progress};

/// S3's limits on multipart uploads.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * GIB;
pub const MAX_PARTS: u64 = 10_000;
/// The largest object S3 stores, and the largest single PutObject.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * GIB;
pub const MAX_SINGLE_PUT: u64 = 5 * GIB;
/// How much of a file is read at once, to hash it and to send it.
pub const READ_BUFFER: usize = 1024 * 1024;
/// Parts of one file queued for a request slot at once.
const MAX_WAITING_PARTS: usize = 64;
/// An upload body that makes no progress for this long fails (and is retried by the SDK).
pub const STALL_GRACE: Duration = Duration::from_secs(30);

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// When a file is uploaded in parts, and how big they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSettings {
    /// Files of at least this many bytes are uploaded in parts.
    pub threshold: u64,
    /// The size of every part but the last, grown for files that would need more than
    /// [`MAX_PARTS`] parts.
    pub part_size: u64,
}

impl PartSettings {
    /// How a file of `size` bytes is cut: `None` for a single PutObject, else the part size.
    pub fn part_size_for(&self, size: u64) -> Option<u64> {
        if size < self.threshold {
            return None;
        }
        let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        Some(
            self.part_size
                .max(needed)
                .clamp(MIN_PART_SIZE, MAX_PART_SIZE),
        )
    }
}

/// The byte ranges of a file of `size` cut in parts of `part_size` (one range when `None`).
pub fn ranges(size: u64, part_size: Option<u64>) -> Vec<(u64, u64)> {
    let step = part_size.unwrap_or(size).max(1);
    let mut ranges = Vec::new();
    let mut offset = 0;
    while offset < size {
        let length = step.min(size - offset);
        ranges.push((offset, length));
        offset += length;
    }
    if ranges.is_empty() {
        ranges.push((0, 0));
    }
    ranges
}

/// CRC64NVME of `length` bytes of `path` from `offset`. Blocking: call it off the runtime.
pub fn crc_of_range(path: &Path, offset: u64, length: u64) -> std::io::Result<u64> {
    use std::io::Seek;
    let mut file = std::fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut buffer = vec![0u8; READ_BUFFER.min(length.max(1) as usize)];
    let mut left = length;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let read = file.read(&mut buffer[..want])?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than it was",
            ));
        }
        digest.update(&buffer[..read]);
        left -= read as u64;
    }
    Ok(digest.finalize())
}

/// The CRC64NVME of `a` followed by `b_length` bytes whose CRC64NVME is `b`.
pub fn combine(a: u64, b: u64, b_length: u64) -> u64 {
    crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, a, b, b_length)
}

/// The whole file's CRC64NVME from its parts' (in order, with their lengths).
pub fn combine_parts(parts: &[(u64, u64)]) -> u64 {
    let mut iter = parts.iter();
    let Some(&(first, _)) = iter.next() else {
        return crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"");
    };
    iter.fold(first, |crc, &(part, length)| combine(crc, part, length))
}

/// A CRC64NVME as S3 writes it: base64 of its 8 big-endian bytes.
pub fn encode_crc(crc: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// CRC64NVME of each range of `path`, in order; blocking work runs off the runtime, one
/// range at a time.
pub async fn crc_of_ranges(path: &Path, ranges: &[(u64, u64)]) -> std::io::Result<Vec<u64>> {
    let mut crcs = Vec::with_capacity(ranges.len());
    for &(offset, length) in ranges {
        crcs.push(hash_range(path.to_path_buf(), offset, length).await?);
    }
    Ok(crcs)
}

async fn hash_range(path: PathBuf, offset: u64, length: u64) -> std::io::Result<u64> {
    tokio::task::spawn_blocking(move || crc_of_range(&path, offset, length))
        .await
        .map_err(std::io::Error::other)?
}

/// How long one upload request of `bytes` may take: 60 s plus 64 KiB/s (a request slower
/// than that, with the SDK's stall protection not firing, has an endpoint that stopped
/// answering).
pub fn transfer_timeout(bytes: u64) -> Duration {
    Duration::from_secs(60 + bytes / (64 * 1024))
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// What HeadObject says of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub size: u64,
    /// Its full-object CRC64NVME, when it has one (a composite checksum is not one).
    pub crc64nvme: Option<String>,
}

/// One file to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub path: PathBuf,
    pub size: u64,
    /// When the file was last modified as it was walked: a file that changes while it is
    /// uploaded fails instead of leaving a mix of two versions.
    pub modified: Option<std::time::SystemTime>,
    /// `None`: one PutObject.
    pub part_size: Option<u64>,
    /// The CRC64NVME of each part (of the file for a PutObject), when already computed.
    pub known_crcs: Option<Vec<u64>>,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The object's CRC64NVME, as S3 writes it.
    pub crc64nvme: String,
    /// 0 for a single PutObject.
    pub parts: usize,
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` changed while it was uploaded", path.display())]
    Changed { path: PathBuf },
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The upload failed and its multipart upload could not be aborted either.
    #[error(
        "{error}; and its incomplete multipart upload `{upload_id}` could not be aborted ({abort}): it is billed until it is aborted (`aws s3api abort-multipart-upload`) or a lifecycle rule for incomplete uploads removes it"
    )]
    NotAborted {
        error: Box<TransferError>,
        upload_id: String,
        abort: String,
    },
}

impl TransferError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TransferError::Api(error) => error.hint(),
            TransferError::NotAborted { error, .. } => error.hint(),
            TransferError::Changed { .. } => Some(
                "push again once the file is complete; nothing half-written was kept".to_string(),
            ),
            TransferError::Read { .. } => None,
        }
    }
}

/// Progress of one upload, in bytes sent (negative when a request starts again).
pub type Progress = Arc<dyn Fn(i64) + Send + Sync>;

/// The models bucket, for transfers.
pub struct Bucket {
    pub name: String,
    /// The project's client, with its time limits: listing, heads, deletes, the marker.
    control: aws_sdk_s3::Client,
    /// The client for request bodies: connect limit only; each request's own limit.
    data: aws_sdk_s3::Client,
    /// Multipart uploads in flight (id -> key), aborted by [`Bucket::abort_all`].
    uploads: Mutex<BTreeMap<String, String>>,
}

impl Bucket {
    pub fn new(aws: &Aws, name: &str, notify: call_progress::Notify) -> Bucket {
        let progress = call_progress::CallProgress {
            notify,
            attempts: aws
                .config
                .retry_config()
                .map(|r| r.max_attempts())
                .unwrap_or(super::AWS_ATTEMPTS),
        };
        let data = aws_sdk_s3::config::Builder::from(&aws.config)
            .force_path_style(super::endpoint_overridden("S3"))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(super::AWS_CONNECT_TIMEOUT)
                    .disable_read_timeout()
                    .disable_operation_attempt_timeout()
                    .disable_operation_timeout()
                    .build(),
            )
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(STALL_GRACE)
                    .build(),
            )
            .interceptor(progress)
            .build();
        Bucket {
            name: name.to_string(),
            control: aws.s3.clone(),
            data: aws_sdk_s3::Client::from_conf(data),
            uploads: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether the bucket exists (and the credentials may see it).
    pub async fn exists(&self) -> Result<bool, ApiError> {
        match self.control.head_bucket().bucket(&self.name).send().await {
            Ok(_) => Ok(true),
            Err(error) => {
                let error = aws_error(format!("failed to read S3 bucket `{}`", self.name), error);
                if error.class == ErrorClass::NotFound {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Every object under `prefix` (all of them for `""`), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, ApiError> {
        let operation = || {
            format!(
                "failed to list the objects of S3 bucket `{}` under `{prefix}`",
                self.name
            )
        };
        let mut pages = self
            .control
            .list_objects_v2()
            .bucket(&self.name)
            .set_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error(operation(), e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    listed.push(Listed {
                        key: key.to_string(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    /// The object's size and full-object CRC64NVME; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<Remote>, ApiError> {
        let answer = self
            .control
            .head_object()
            .bucket(&self.name)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match answer {
            Ok(head) => {
                let composite = head.checksum_type() == Some(&ChecksumType::Composite);
                Ok(Some(Remote {
                    size: head.content_length().unwrap_or(0).max(0) as u64,
                    crc64nvme: head
                        .checksum_crc64_nvme()
                        .filter(|value| !composite && !value.contains('-'))
                        .map(str::to_string),
                }))
            }
            Err(error) => {
                let error = aws_error(
                    format!("failed to read object `{key}` of S3 bucket `{}`", self.name),
                    error,
                );
                if error.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Uploads one file, each request holding one of `slots` while it runs.
    pub async fn upload(
        &self,
        upload: &Upload,
        slots: &Semaphore,
        progress: Progress,
    ) -> Result<Uploaded, TransferError> {
        let uploaded = match upload.part_size {
            None => self.put(upload, slots, progress).await?,
            Some(part_size) => self.multipart(upload, part_size, slots, progress).await?,
        };
        Ok(uploaded)
    }

    async fn put(
        &self,
        upload: &Upload,
        slots: &Semaphore,
        progress: Progress,
    ) -> Result<Uploaded, TransferError> {
        let _slot = slots.acquire().await.map_err(|_| closed())?;
        let crc = match upload.known_crcs.as_deref() {
            Some([crc]) => *crc,
            _ => hash_range(upload.path.clone(), 0, upload.size)
                .await
                .map_err(|source| read_error(&upload.path, source))?,
        };
        let crc64nvme = encode_crc(crc);
        let body = file_body(&upload.path, 0, upload.size, progress).await?;
        self.data
            .put_object()
            .bucket(&self.name)
            .key(&upload.key)
            .body(body)
            .content_length(upload.size as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(&crc64nvme)
            .customize()
            .config_override(sized(upload.size))
            .send()
            .await
            .map_err(|e| aws_error(format!("failed to upload `{}`", upload.key), e))?;
        check_unchanged(upload)?;
        Ok(Uploaded {
            crc64nvme,
            parts: 0,
        })
    }

    async fn multipart(
        &self,
        upload: &Upload,
        part_size: u64,
        slots: &Semaphore,
        progress: Progress,
    ) -> Result<Uploaded, TransferError> {
        let created = self
            .control
            .create_multipart_upload()
            .bucket(&self.name)
            .key(&upload.key)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format!("failed to start the multipart upload of `{}`", upload.key),
                    e,
                )
            })?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(ApiError::new(
                format!("failed to start the multipart upload of `{}`", upload.key),
                ErrorClass::Rejected,
                "the answer has no upload id",
            )
            .into());
        };
        self.track(&upload_id, Some(&upload.key));
        let result = self
            .upload_parts(upload, part_size, &upload_id, slots, progress)
            .await;
        let result = match result {
            Ok(uploaded) => Ok(uploaded),
            Err(error) => match self.abort(&upload.key, &upload_id).await {
                Ok(()) => Err(error),
                Err(abort) => Err(TransferError::NotAborted {
                    error: Box::new(error),
                    upload_id: upload_id.clone(),
                    abort: crate::errors::chain(&abort),
                }),
            },
        };
        self.track(&upload_id, None);
        result
    }

    async fn upload_parts(
        &self,
        upload: &Upload,
        part_size: u64,
        upload_id: &str,
        slots: &Semaphore,
        progress: Progress,
    ) -> Result<Uploaded, TransferError> {
        let ranges = ranges(upload.size, Some(part_size));
        if ranges.len() as u64 > MAX_PARTS {
            return Err(ApiError::new(
                format!("failed to upload `{}`", upload.key),
                ErrorClass::Rejected,
                format!("{} parts are more than S3's {MAX_PARTS}", ranges.len()),
            )
            .into());
        }
        let known = upload
            .known_crcs
            .as_ref()
            .filter(|crcs| crcs.len() == ranges.len());
        let parts: Vec<(CompletedPart, (u64, u64))> =
            stream::iter(ranges.iter().copied().enumerate())
                .map(|(index, (offset, length))| {
                    let progress = progress.clone();
                    let known = known.map(|crcs| crcs[index]);
                    async move {
                        let _slot = slots.acquire().await.map_err(|_| closed())?;
                        let crc = match known {
                            Some(crc) => crc,
                            None => hash_range(upload.path.clone(), offset, length)
                                .await
                                .map_err(|source| read_error(&upload.path, source))?,
                        };
                        let number = index as i32 + 1;
                        let body = file_body(&upload.path, offset, length, progress).await?;
                        let answer = self
                            .data
                            .upload_part()
                            .bucket(&self.name)
                            .key(&upload.key)
                            .upload_id(upload_id)
                            .part_number(number)
                            .body(body)
                            .content_length(length as i64)
                            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                            .checksum_crc64_nvme(encode_crc(crc))
                            .customize()
                            .config_override(sized(length))
                            .send()
                            .await
                            .map_err(|e| {
                                aws_error(
                                    format!("failed to upload part {number} of `{}`", upload.key),
                                    e,
                                )
                            })?;
                        let part = CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(answer.e_tag().map(str::to_string))
                            .checksum_crc64_nvme(encode_crc(crc))
                            .build();
                        Ok::<_, TransferError>((part, (crc, length)))
                    }
                })
                // The slots bound what runs; this only bounds the futures waiting for one.
                .buffered(MAX_WAITING_PARTS)
                .try_collect()
                .await?;
        check_unchanged(upload)?;
        let crc = combine_parts(&parts.iter().map(|(_, crc)| *crc).collect::<Vec<_>>());
        let crc64nvme = encode_crc(crc);
        let count = parts.len();
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(parts.into_iter().map(|(part, _)| part).collect()))
            .build();
        let answer = self
            .data
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(&upload.key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(&crc64nvme)
            .mpu_object_size(upload.size as i64)
            .customize()
            .config_override(sized_complete(upload.size))
            .send()
            .await;
        if let Err(error) = answer {
            let error = aws_error(
                format!(
                    "failed to complete the multipart upload of `{}`",
                    upload.key
                ),
                error,
            );
            // An answer lost after S3 completed it: the retry finds no such upload, and
            // the object is there with this checksum.
            let done = error.code.as_deref() == Some("NoSuchUpload")
                && self.head(&upload.key).await.ok().flatten()
                    == Some(Remote {
                        size: upload.size,
                        crc64nvme: Some(crc64nvme.clone()),
                    });
            if !done {
                return Err(error.into());
            }
        }
        Ok(Uploaded {
            crc64nvme,
            parts: count,
        })
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), ApiError> {
        let answer = self
            .control
            .abort_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = aws_error(
                    format!("failed to abort the multipart upload of `{key}`"),
                    error,
                );
                // Gone already: nothing is left behind.
                if error.class == ErrorClass::NotFound {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    fn track(&self, upload_id: &str, key: Option<&str>) {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        match key {
            Some(key) => uploads.insert(upload_id.to_string(), key.to_string()),
            None => uploads.remove(upload_id),
        };
    }

    /// Aborts every multipart upload still in flight (after an interruption); returns the
    /// keys whose upload could not be aborted, with why.
    pub async fn abort_all(&self) -> Vec<(String, String, ApiError)> {
        let uploads: Vec<(String, String)> =
            std::mem::take(&mut *self.uploads.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        let mut failed = Vec::new();
        for (upload_id, key) in uploads {
            if let Err(error) = self.abort(&key, &upload_id).await {
                failed.push((key, upload_id, error));
            }
        }
        failed
    }

    /// Deletes `keys` (DeleteObjects, 1000 at a time); returns those that failed, with why.
    pub async fn delete(&self, keys: &[String]) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for chunk in keys.chunks(1000) {
            let objects: Result<Vec<ObjectIdentifier>, _> = chunk
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect();
            let delete = objects.and_then(|objects| {
                Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
            });
            let delete = match delete {
                Ok(delete) => delete,
                Err(error) => {
                    failed.extend(chunk.iter().map(|key| (key.clone(), error.to_string())));
                    continue;
                }
            };
            let answer = self
                .control
                .delete_objects()
                .bucket(&self.name)
                .delete(delete)
                .send()
                .await;
            match answer {
                Ok(output) => failed.extend(output.errors().iter().map(|error| {
                    (
                        error.key().unwrap_or_default().to_string(),
                        format!(
                            "{}: {}",
                            error.code().unwrap_or("Error"),
                            error.message().unwrap_or_default()
                        ),
                    )
                })),
                Err(error) => {
                    let error = aws_error(
                        format!("failed to delete objects of S3 bucket `{}`", self.name),
                        error,
                    );
                    let text = crate::errors::chain(&error);
                    failed.extend(chunk.iter().map(|key| (key.clone(), text.clone())));
                }
            }
        }
        failed
    }

    /// The text of a small object (the generation marker), `None` when there is none.
    pub async fn get_small(&self, key: &str) -> Result<Option<String>, ApiError> {
        let operation = format!("failed to read `{key}` of S3 bucket `{}`", self.name);
        match self
            .control
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(output) => {
                let body =
                    output.body.collect().await.map_err(|e| {
                        ApiError::new(&operation, ErrorClass::Transient, e.to_string())
                    })?;
                Ok(Some(
                    String::from_utf8_lossy(&body.into_bytes())
                        .trim()
                        .to_string(),
                ))
            }
            Err(error) => {
                let error = aws_error(&operation, error);
                if error.class == ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Writes a small object (the generation marker) with its CRC64NVME.
    pub async fn put_small(&self, key: &str, body: Vec<u8>) -> Result<(), ApiError> {
        let crc = encode_crc(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &body));
        self.control
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type("text/plain")
            .body(ByteStream::from(body))
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format!("failed to write `{key}` to S3 bucket `{}`", self.name),
                    e,
                )
            })?;
        Ok(())
    }
}

fn closed() -> TransferError {
    ApiError::new(
        "upload stopped",
        ErrorClass::Rejected,
        "no request slots left",
    )
    .into()
}

fn read_error(path: &Path, source: std::io::Error) -> TransferError {
    TransferError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Fails when the file no longer has the size and modification time it was walked with.
fn check_unchanged(upload: &Upload) -> Result<(), TransferError> {
    let metadata =
        std::fs::metadata(&upload.path).map_err(|source| read_error(&upload.path, source))?;
    if metadata.len() != upload.size || metadata.modified().ok() != upload.modified {
        return Err(TransferError::Changed {
            path: upload.path.clone(),
        });
    }
    Ok(())
}

/// The time limits of one upload request of `bytes`.
fn sized(bytes: u64) -> aws_sdk_s3::config::Builder {
    limits(transfer_timeout(bytes))
}

/// CompleteMultipartUpload assembles the object on the server: 5 min plus 16 MiB/s.
fn sized_complete(bytes: u64) -> aws_sdk_s3::config::Builder {
    limits(Duration::from_secs(300 + bytes / (16 * MIB)))
}

/// The connect limit, no first-byte limit (it would cover sending the body), `attempt` per
/// attempt and three of them for the whole call.
fn limits(attempt: Duration) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(super::AWS_CONNECT_TIMEOUT)
            .disable_read_timeout()
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * 3)
            .build(),
    )
}

/// `length` bytes of `path` from `offset`, streamed (re-read from the file on a retry),
/// reporting each chunk sent to `progress`.
async fn file_body(
    path: &Path,
    offset: u64,
    length: u64,
    progress: Progress,
) -> Result<ByteStream, TransferError> {
    let stream = ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(length))
        .buffer_size(READ_BUFFER)
        .build()
        .await
        .map_err(|error| read_error(path, std::io::Error::other(error)))?;
    let sent = Arc::new(AtomicU64::new(0));
    let body = stream.into_inner().map_preserve_contents(move |inner| {
        // A new attempt sends again from the start: take back what the last one counted.
        let previous = sent.swap(0, Ordering::Relaxed);
        if previous > 0 {
            progress(-(previous as i64));
        }
        SdkBody::from_body_1_x(Counted {
            inner,
            sent: sent.clone(),
            progress: progress.clone(),
        })
    });
    Ok(ByteStream::new(body))
}

/// A request body that reports the bytes it hands on.
struct Counted {
    inner: SdkBody,
    sent: Arc<AtomicU64>,
    progress: Progress,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> TaskPoll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let TaskPoll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let length = data.len() as u64;
            self.sent.fetch_add(length, Ordering::Relaxed);
            (self.progress)(length as i64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64nvme_matches_the_check_value_and_combines() {
        // The catalogue's check value of CRC-64/NVME for "123456789".
        let whole = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"123456789");
        assert_eq!(whole, 0xae8b_1486_0a79_9888);
        let a = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"1234");
        let b = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b"56789");
        assert_eq!(combine_parts(&[(a, 4), (b, 5)]), whole);
        assert_eq!(encode_crc(whole), "rosUhgp5mIg=");
    }

    #[test]
    fn a_file_hashed_in_ranges_gives_the_crc_of_the_whole() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("model.safetensors");
        let bytes: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let whole = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &bytes);
        assert_eq!(
            crc_of_range(&path, 0, bytes.len() as u64).expect("hash"),
            whole
        );
        let parts: Vec<(u64, u64)> = ranges(bytes.len() as u64, Some(1_000_000))
            .into_iter()
            .map(|(offset, length)| (crc_of_range(&path, offset, length).expect("hash"), length))
            .collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(combine_parts(&parts), whole);
        assert!(crc_of_range(&path, 2_999_999, 10).is_err(), "past the end");
    }

    #[test]
    fn parts_follow_the_threshold_and_stay_within_s3s_limits() {
        let settings = PartSettings {
            threshold: 64 * MIB,
            part_size: 16 * MIB,
        };
        assert_eq!(settings.part_size_for(64 * MIB - 1), None);
        assert_eq!(settings.part_size_for(64 * MIB), Some(16 * MIB));
        // 1 TiB in 16 MiB parts would be 65536 parts: the parts grow to stay at 10000.
        let big = settings.part_size_for(1024 * GIB).expect("multipart");
        assert!(
            (1024 * GIB).div_ceil(big) <= MAX_PARTS,
            "{big} gives too many parts"
        );
        assert_eq!(big % MIB, 0);
        let largest = settings.part_size_for(MAX_OBJECT_SIZE).expect("multipart");
        assert!(MAX_OBJECT_SIZE.div_ceil(largest) <= MAX_PARTS);
        assert!(largest <= MAX_PART_SIZE);
        assert_eq!(
            ranges(20 * MIB, Some(8 * MIB)),
            vec![(0, 8 * MIB), (8 * MIB, 8 * MIB), (16 * MIB, 4 * MIB)]
        );
        assert_eq!(ranges(0, None), vec![(0, 0)]);
        assert_eq!(ranges(10, None), vec![(0, 10)]);
    }

    #[test]
    fn transfers_get_time_in_proportion_to_their_bytes() {
        assert_eq!(transfer_timeout(0), Duration::from_secs(60));
        assert_eq!(transfer_timeout(64 * MIB), Duration::from_secs(60 + 1024));
    }
}
