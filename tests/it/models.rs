//! `comfyplat models push / ls / rm` through the recording proxy against moto: every key of a
//! generated `models/` tree present with its full-object CRC64NVME (HeadObject with checksum
//! mode, the aws CLI, and values computed independently by awscrt); a multipart upload for
//! the large file; the generation marker bumped after every change and only then; a second
//! push with zero uploads; one changed file, one upload; `--delete` and `--to`; `--dry-run`
//! with zero writes; `ls` sizes; `rm` of objects and folders; a failed part aborting its
//! multipart upload; bad input refused with zero calls.

use std::path::{Path, PathBuf};

use crate::support::*;

/// What the tests make multipart: 16 MiB and up, in 8 MiB parts (S3's minimum is 5 MiB).
const THRESHOLD: &str = "16MiB";
const PART_SIZE: &str = "8MiB";
const BIG: usize = 20 * 1024 * 1024 + 12345;
const MARKER: &str = ".comfyplat/generation";
const UPLOADS: &[&str] = &["PutObject", "UploadPart", "CreateMultipartUpload"];

struct Setup {
    emulator: Emulator,
    proxy: Proxy,
    workspace: Workspace,
    reader: Reader,
    bucket: String,
    /// The generated `models/` folder.
    models: PathBuf,
}

/// The emulator with the models bucket the sandbox platform expects (made directly, as
/// `comfyplat apply` would have), the proxy in front of it, and a generated tree.
fn setup() -> Setup {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint, ProxyOptions::default());
    let workspace = Workspace::sandbox();
    let reader = Reader::new(&emulator.endpoint);
    let bucket = bucket("models");
    reader
        .block_on(
            reader
                .s3
                .create_bucket()
                .bucket(&bucket)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                        .build(),
                )
                .send(),
        )
        .expect("create the models bucket");
    let models = workspace.dir.path().join("models");
    write(&models, "checkpoints/sdxl.safetensors", &pattern(BIG, 1));
    write(&models, "checkpoints/put_checkpoints_here", b"");
    write(&models, "loras/styles/ink.safetensors", &pattern(4096, 2));
    write(&models, "loras/.DS_Store", b"hidden");
    write(&models, "vae/sdxl_vae.safetensors", &pattern(300_000, 3));
    write(
        &models,
        "configs/v1-inference.yaml",
        b"model:\n  target: x\n",
    );
    write(&models, "embeddings/easynegative.pt", &pattern(25_000, 4));
    Setup {
        emulator,
        proxy,
        workspace,
        reader,
        bucket,
        models,
    }
}

/// The keys the generated tree pushes, in order.
const KEYS: &[&str] = &[
    "checkpoints/sdxl.safetensors",
    "configs/v1-inference.yaml",
    "embeddings/easynegative.pt",
    "loras/styles/ink.safetensors",
    "vae/sdxl_vae.safetensors",
];

/// Deterministic bytes that differ per seed.
fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|i| ((i as u64 * 2654435761 + seed as u64 * 97) >> 7) as u8)
        .collect()
}

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

impl Setup {
    /// `comfyplat models ARGS` through the proxy, with the tests' part settings.
    fn models(&self, args: &[&str]) -> Run {
        let mut all = vec!["models"];
        all.extend_from_slice(args);
        let output = self
            .workspace
            .command(&self.proxy.endpoint, &all)
            .env("COMFYPLAT_MULTIPART_THRESHOLD", THRESHOLD)
            .env("COMFYPLAT_PART_SIZE", PART_SIZE)
            .output()
            .expect("run comfyplat");
        Run::from(output)
    }

    fn push(&self, extra: &[&str]) -> Run {
        let dir = self.models.display().to_string();
        let mut args = vec!["push", dir.as_str()];
        args.extend_from_slice(extra);
        self.models(&args)
    }

    /// Every key in the bucket, in order.
    fn keys(&self) -> Vec<String> {
        let listed = self
            .reader
            .block_on(self.reader.s3.list_objects_v2().bucket(&self.bucket).send())
            .expect("list");
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    fn generation(&self) -> String {
        let object = self
            .reader
            .block_on(
                self.reader
                    .s3
                    .get_object()
                    .bucket(&self.bucket)
                    .key(MARKER)
                    .send(),
            )
            .expect("the generation marker");
        let bytes = self
            .reader
            .block_on(object.body.collect())
            .expect("read the marker")
            .into_bytes();
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    /// HeadObject with checksum mode: (size, CRC64NVME).
    fn head(&self, key: &str) -> (i64, Option<String>) {
        let head = self
            .reader
            .block_on(
                self.reader
                    .s3
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                    .send(),
            )
            .expect("head object");
        (
            head.content_length().unwrap_or_default(),
            head.checksum_crc64_nvme().map(str::to_string),
        )
    }

    /// The keys of the multipart uploads begun and neither completed nor aborted.
    fn incomplete_uploads(&self) -> Vec<String> {
        let listed = self
            .reader
            .block_on(
                self.reader
                    .s3
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .send(),
            )
            .expect("list multipart uploads");
        listed
            .uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_string))
            .collect()
    }

    /// The logged S3 calls of `actions`, as `action key`.
    fn calls(&self, actions: &[&str]) -> Vec<String> {
        let mut calls: Vec<String> = self
            .proxy
            .requests()
            .into_iter()
            .filter(|r| actions.contains(&r.action.as_str()))
            .map(|r| {
                let key = r.path.splitn(3, '/').nth(2).unwrap_or("").to_string();
                format!("{} {key}", r.action)
            })
            .collect();
        calls.sort();
        calls
    }
}

/// The CRC64NVME of each file as S3 writes it (base64 of the big-endian bytes), computed by
/// awscrt: an implementation comfyplat does not use.
fn independent_crcs(files: &[PathBuf]) -> Vec<String> {
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import base64, sys\nfrom awscrt import checksums\nfor path in sys.argv[1:]:\n    crc = 0\n    with open(path, 'rb') as f:\n        while chunk := f.read(1 << 20):\n            crc = checksums.crc64nvme(chunk, crc)\n    print(base64.b64encode(crc.to_bytes(8, 'big')).decode())",
        )
        .args(files)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_generation_line(marker: &str) {
    let line = marker.strip_suffix('\n').expect("one line");
    let (millis, random) = line.split_once('-').expect("millis-random");
    assert_eq!(millis.len(), 13, "{marker:?}");
    assert!(millis.chars().all(|c| c.is_ascii_digit()), "{marker:?}");
    assert_eq!(random.len(), 8, "{marker:?}");
    assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{marker:?}");
}

#[test]
fn push_uploads_every_file_with_its_full_object_checksum_and_then_only_what_changed() {
    let setup = setup();
    let run = setup.push(&[]).expect(0);
    assert!(
        run.stderr
            .contains("uploaded checkpoints/sdxl.safetensors (20.0 MiB, 3 parts)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("uploaded 5 file(s)"), "{}", run.stderr);

    // Every key, and the marker; nothing hidden, no placeholder.
    let mut expected: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
    expected.insert(0, MARKER.to_string());
    assert_eq!(setup.keys(), expected);
    let files: Vec<PathBuf> = KEYS.iter().map(|k| setup.models.join(k)).collect();
    let crcs = independent_crcs(&files);
    for ((key, file), crc) in KEYS.iter().zip(&files).zip(&crcs) {
        let size = std::fs::metadata(file).expect("stat").len() as i64;
        assert_eq!(setup.head(key), (size, Some(crc.clone())), "{key}");
    }
    // The aws CLI reads the same checksums, and the large file's as a full-object one.
    let cli = aws_cli(
        &setup.emulator.endpoint,
        &[
            "s3api",
            "head-object",
            "--bucket",
            &setup.bucket,
            "--key",
            KEYS[0],
            "--checksum-mode",
            "ENABLED",
        ],
    );
    assert_eq!(cli["ChecksumCRC64NVME"], crcs[0].as_str());
    assert_eq!(cli["ChecksumType"], "FULL_OBJECT");
    assert_eq!(cli["ContentLength"], BIG as i64);

    // One multipart upload of 3 parts (8 + 8 + 4 MiB), single PUTs for the rest.
    let key = KEYS[0];
    assert_eq!(
        setup.calls(&["CreateMultipartUpload", "CompleteMultipartUpload"]),
        [
            format!("CompleteMultipartUpload {key}"),
            format!("CreateMultipartUpload {key}")
        ]
    );
    assert_eq!(setup.calls(&["UploadPart"]).len(), 3);
    let mut puts: Vec<String> = KEYS[1..].iter().map(|k| format!("PutObject {k}")).collect();
    puts.push(format!("PutObject {MARKER}"));
    puts.sort();
    assert_eq!(setup.calls(&["PutObject"]), puts);
    let first = setup.generation();
    assert_generation_line(&first);

    // Again: nothing is uploaded, nothing written at all, the marker stays.
    setup.proxy.clear();
    let run = setup.push(&[]).expect(0);
    assert!(run.stderr.contains("up to date"), "{}", run.stderr);
    assert!(run.stderr.contains("5 file(s) unchanged"), "{}", run.stderr);
    assert_eq!(setup.calls(UPLOADS), Vec::<String>::new());
    assert_eq!(setup.proxy.writes().len(), 0, "{:?}", setup.proxy.writes());
    assert_eq!(setup.generation(), first);

    // A file changed in place, same size: found by its checksum, and the only upload.
    write(
        &setup.models,
        "loras/styles/ink.safetensors",
        &pattern(4096, 9),
    );
    setup.proxy.clear();
    setup.push(&[]).expect(0);
    assert_eq!(
        setup.calls(UPLOADS),
        [
            format!("PutObject {MARKER}"),
            "PutObject loras/styles/ink.safetensors".to_string()
        ]
    );
    let second = setup.generation();
    assert_generation_line(&second);
    assert_ne!(second, first);

    // One byte of the large file: its multipart upload again, and nothing else.
    let mut big = pattern(BIG, 1);
    big[BIG - 1] ^= 0xff;
    write(&setup.models, KEYS[0], &big);
    setup.proxy.clear();
    setup.push(&[]).expect(0);
    let calls = setup.calls(UPLOADS);
    assert_eq!(
        calls,
        [
            format!("CreateMultipartUpload {key}"),
            format!("PutObject {MARKER}"),
            format!("UploadPart {key}"),
            format!("UploadPart {key}"),
            format!("UploadPart {key}"),
        ]
    );
    let crc = independent_crcs(&[setup.models.join(KEYS[0])]);
    assert_eq!(setup.head(KEYS[0]).1, crc.first().cloned());
    assert_ne!(setup.generation(), second);
}

#[test]
fn delete_removes_what_the_folder_does_not_have_but_never_the_marker() {
    let setup = setup();
    setup.push(&[]).expect(0);
    setup
        .reader
        .put_object(&setup.bucket, "loras/stray.safetensors");
    setup.reader.put_object(&setup.bucket, "old/model.ckpt");
    let before = setup.generation();

    // Without --delete the strays stay.
    setup.push(&[]).expect(0);
    assert!(setup.keys().contains(&"old/model.ckpt".to_string()));

    // `--to loras --delete` touches only keys under loras/.
    setup.proxy.clear();
    let loras = setup.models.join("loras").display().to_string();
    let run = setup
        .models(&["push", &loras, "--to", "loras", "--delete"])
        .expect(0);
    assert!(
        run.stderr.contains("deleted loras/stray.safetensors"),
        "{}",
        run.stderr
    );
    assert_eq!(
        setup.calls(&["DeleteObjects", "DeleteObject"]),
        ["DeleteObjects ".to_string()]
    );
    let keys = setup.keys();
    assert!(!keys.contains(&"loras/stray.safetensors".to_string()));
    assert!(keys.contains(&"old/model.ckpt".to_string()), "{keys:?}");
    assert_ne!(setup.generation(), before);

    // At the top, --delete removes every other stray and keeps the marker.
    let run = setup.push(&["--delete"]).expect(0);
    assert!(
        run.stderr.contains("deleted old/model.ckpt"),
        "{}",
        run.stderr
    );
    let mut expected: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
    expected.insert(0, MARKER.to_string());
    assert_eq!(setup.keys(), expected);
    assert_generation_line(&setup.generation());
}

#[test]
fn dry_run_says_what_would_change_and_writes_nothing() {
    let setup = setup();
    let run = setup.push(&["--dry-run"]).expect(0);
    assert!(
        run.stdout.starts_with(
            "dry run: would upload 5 file(s) (20.3 MiB) and delete 0 object(s) in `comfyui-models-123456789012-us-west-2`; 0 file(s) unchanged\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("  + checkpoints/sdxl.safetensors")
                && l.ends_with("new, in 3 parts")),
        "{}",
        run.stdout
    );
    assert_eq!(setup.proxy.writes().len(), 0);
    assert!(setup.keys().is_empty());

    setup.push(&[]).expect(0);
    write(
        &setup.models,
        "vae/sdxl_vae.safetensors",
        &pattern(300_001, 5),
    );
    setup
        .reader
        .put_object(&setup.bucket, "loras/stray.safetensors");
    let marker = setup.generation();
    setup.proxy.clear();
    let run = setup.push(&["--dry-run", "--delete"]).expect(0);
    let lines: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[0].starts_with("  ~ vae/sdxl_vae.safetensors") && lines[0].ends_with("changed"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("  - loras/stray.safetensors"),
        "{}",
        run.stdout
    );
    assert_eq!(setup.proxy.writes().len(), 0, "{:?}", setup.proxy.writes());
    assert_eq!(setup.generation(), marker);
    assert!(
        setup
            .keys()
            .contains(&"loras/stray.safetensors".to_string())
    );
}

#[test]
fn ls_shows_the_tree_with_sizes_and_rm_deletes_and_bumps_the_generation() {
    let setup = setup();
    // No cluster access needed: a kubeconfig platform.yaml names but this machine lacks is
    // no reason to refuse (plan and apply would).
    setup.workspace.write(&format!(
        "{}kubernetes:\n  kubeconfig: missing/kubeconfig\n",
        sandbox_yaml()
    ));
    let empty = setup.models(&["ls"]).expect(0);
    assert!(empty.stdout.is_empty());
    assert!(
        empty.stderr.contains("no models in `comfyui-models-"),
        "{}",
        empty.stderr
    );
    setup.push(&[]).expect(0);
    let ls = setup.models(&["ls"]).expect(0);
    assert_eq!(
        ls.stdout,
        "\
checkpoints/             20.0 MiB  1 file
  sdxl.safetensors       20.0 MiB
configs/                     19 B  1 file
  v1-inference.yaml          19 B
embeddings/              24.4 KiB  1 file
  easynegative.pt        24.4 KiB
loras/                    4.0 KiB  1 file
  styles/                 4.0 KiB  1 file
    ink.safetensors       4.0 KiB
vae/                    293.0 KiB  1 file
  sdxl_vae.safetensors  293.0 KiB
5 files, 20.3 MiB in total
"
    );
    let loras = setup.models(&["ls", "loras/"]).expect(0);
    assert!(
        loras.stdout.ends_with("1 file, 4.0 KiB in total\n"),
        "{}",
        loras.stdout
    );

    // A key and a folder; everything else stays.
    let marker = setup.generation();
    setup.proxy.clear();
    let run = setup
        .models(&["rm", "vae/sdxl_vae.safetensors", "loras"])
        .expect(0);
    assert!(
        run.stderr.contains("deleted loras/styles/ink.safetensors"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("deleted 2 object(s)"), "{}", run.stderr);
    assert_eq!(
        setup.keys(),
        [
            MARKER,
            "checkpoints/sdxl.safetensors",
            "configs/v1-inference.yaml",
            "embeddings/easynegative.pt"
        ]
    );
    let after = setup.generation();
    assert_generation_line(&after);
    assert_ne!(after, marker);

    // A path that matches nothing stops the whole rm before any write.
    setup.proxy.clear();
    let run = setup.models(&["rm", "configs", "nope/"]).expect(1);
    assert!(
        run.stderr
            .contains("nothing in the bucket matches `nope/`; nothing was deleted"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(setup.proxy.writes().len(), 0);
    assert!(
        setup
            .keys()
            .contains(&"configs/v1-inference.yaml".to_string())
    );
    assert_eq!(setup.generation(), after);
}

#[test]
fn a_failed_part_aborts_its_multipart_upload_and_names_the_file() {
    let emulator_setup = setup();
    // The same world, behind a proxy that refuses every UploadPart.
    let proxy = Proxy::start(
        &emulator_setup.emulator.endpoint,
        ProxyOptions {
            deny: Some("UploadPart".to_string()),
            ..ProxyOptions::default()
        },
    );
    let dir = emulator_setup.models.display().to_string();
    let output = emulator_setup
        .workspace
        .command(&proxy.endpoint, &["models", "push", &dir])
        .env("COMFYPLAT_MULTIPART_THRESHOLD", THRESHOLD)
        .env("COMFYPLAT_PART_SIZE", PART_SIZE)
        .output()
        .expect("run comfyplat");
    let run = Run::from(output).expect(1);
    assert!(
        run.stderr
            .contains("error: 1 file(s) failed to upload: `checkpoints/sdxl.safetensors`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("failed: checkpoints/sdxl.safetensors: failed to upload part"),
        "{}",
        run.stderr
    );
    let actions: Vec<String> = proxy.requests().into_iter().map(|r| r.action).collect();
    assert!(
        actions.iter().any(|a| a == "AbortMultipartUpload"),
        "{actions:?}"
    );
    assert_eq!(emulator_setup.incomplete_uploads(), Vec::<String>::new());
    // The other files made it, and the marker says the bucket changed.
    let keys = emulator_setup.keys();
    assert!(!keys.contains(&KEYS[0].to_string()), "{keys:?}");
    for key in &KEYS[1..] {
        assert!(keys.contains(&key.to_string()), "{key}: {keys:?}");
    }
    assert_generation_line(&emulator_setup.generation());
}

#[test]
fn bad_input_is_refused_before_any_call() {
    let setup = setup();
    let models = setup.models.display().to_string();
    let file = setup
        .models
        .join("vae/sdxl_vae.safetensors")
        .display()
        .to_string();
    let missing = setup.models.join("nope").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["push", &missing], "cannot read"),
        (vec!["push", &file], "is a file, not a folder"),
        (
            vec!["push", &models, "--to", "loras/../vae"],
            "--to `loras/../vae` has a `..` segment",
        ),
        (vec!["push", &models, "--to", "/loras"], "starts with `/`"),
        (
            vec!["push", &models, "--to", ".comfyplat"],
            "which comfyplat keeps for itself",
        ),
        (vec!["ls", "/checkpoints"], "starts with `/`"),
        (vec!["rm", "loras/.."], "has a `..` segment"),
        (
            vec!["rm", ".comfyplat/generation"],
            "which comfyplat keeps for itself",
        ),
        (vec!["rm"], "required"),
        (vec!["push", &models, "--concurrency", "0"], "0"),
    ];
    for (args, says) in cases {
        let run = setup.models(&args).expect(1);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(
            setup.proxy.requests().is_empty(),
            "{args:?} made calls: {:?}",
            setup.proxy.requests()
        );
    }
    // Parts below S3's minimum.
    let dir = setup.models.display().to_string();
    let output = setup
        .workspace
        .command(&setup.proxy.endpoint, &["models", "push", &dir])
        .env("COMFYPLAT_PART_SIZE", "1MiB")
        .output()
        .expect("run comfyplat");
    let run = Run::from(output).expect(1);
    assert!(
        run.stderr.contains("outside S3's 5 MiB to 5 GiB"),
        "{}",
        run.stderr
    );
    // A link out of the folder.
    let outside = setup.workspace.dir.path().join("shared.safetensors");
    std::fs::write(&outside, b"weights").expect("write");
    std::os::unix::fs::symlink(&outside, setup.models.join("loras/shared.safetensors"))
        .expect("link");
    let run = setup.push(&[]).expect(1);
    assert!(
        run.stderr
            .contains("loras/shared.safetensors` is a symbolic link out of the folder"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(setup.proxy.requests().is_empty());
    std::fs::remove_file(setup.models.join("loras/shared.safetensors")).expect("unlink");

    // A bucket that does not exist yet: found out with reads only, and said so.
    let other = Workspace::new(&sandbox_yaml().replace(
        "  models:\n    versioning: true\n",
        "  models:\n    name: not-made-yet-{account}\n",
    ));
    let run = Run::from(
        other
            .command(
                &setup.proxy.endpoint,
                &["models", "push", &models, "--dry-run"],
            )
            .output()
            .expect("run comfyplat"),
    )
    .expect(1);
    assert!(
        run.stderr.contains(
            "the models bucket `not-made-yet-123456789012` of platform `sandbox` does not exist"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`comfyplat apply`"), "{}", run.stderr);
    assert_eq!(setup.proxy.writes().len(), 0);
}

#[test]
fn an_interrupted_push_aborts_the_multipart_upload_in_flight() {
    let setup = setup();
    // Slow enough (every call 400 ms late) to be interrupted between the parts.
    let slow = Proxy::slow(&setup.emulator.endpoint, 400);
    let dir = setup.models.display().to_string();
    let child = setup
        .workspace
        .command(
            &slow.endpoint,
            &["models", "push", &dir, "--concurrency", "1"],
        )
        .env("COMFYPLAT_MULTIPART_THRESHOLD", THRESHOLD)
        .env("COMFYPLAT_PART_SIZE", PART_SIZE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start comfyplat");
    let started = std::time::Instant::now();
    while !slow
        .requests()
        .iter()
        .any(|r| r.action == "UploadPart" && r.status == 200)
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no part was uploaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The listing sees the upload in flight (so its emptiness below means something).
    assert_eq!(setup.incomplete_uploads(), [KEYS[0]]);
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let output = child.wait_with_output().expect("wait for comfyplat");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: aborting"), "{stderr}");
    let actions: Vec<String> = slow.requests().into_iter().map(|r| r.action).collect();
    assert!(
        actions.iter().any(|a| a == "AbortMultipartUpload"),
        "{actions:?}"
    );
    assert_eq!(setup.incomplete_uploads(), Vec::<String>::new());
    assert!(!setup.keys().contains(&KEYS[0].to_string()));
}
