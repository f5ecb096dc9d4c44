//! Bad platform files are refused before any API call: each case exits 1 with
//! `file:line:column`, a clear message and (where one helps) a hint, and the AWS endpoint
//! (a listener that counts connections) is never contacted.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;

struct Case {
    name: &'static str,
    text: Vec<u8>,
    /// `line:column` the error must point at.
    at: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
    /// Texts that must not appear in the output (a wrong hint, a follow-on error).
    absent: Vec<&'static str>,
}

impl Case {
    fn without(mut self, texts: &[&'static str]) -> Case {
        self.absent.extend_from_slice(texts);
        self
    }
}

fn case(
    name: &'static str,
    text: &str,
    at: &'static str,
    message: &'static str,
    hint: Option<&'static str>,
) -> Case {
    Case {
        name,
        text: text.as_bytes().to_vec(),
        at,
        message,
        hint,
        absent: Vec::new(),
    }
}

const GOOD: &str = "version: 1
name: studio
region: us-west-2
cluster:
  name: comfyui
karpenter:
  node_role: KarpenterNodeRole-comfyui
";

fn corpus() -> Vec<Case> {
    let bomb = "version: 1\nname: studio\nregion: us-west-2\ncluster:\n  name: comfyui\nkarpenter:\n  node_role: r\n\
                tags:\n  a: &a x\n  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n  \
                d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n  f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n";
    let mut large = GOOD.to_string();
    large.push_str("tags:\n");
    let mut index = 0;
    while large.len() < 2 * 1024 * 1024 {
        large.push_str(&format!("  key{index}: value\n"));
        index += 1;
    }
    let mut not_utf8 = GOOD.as_bytes().to_vec();
    not_utf8.extend_from_slice(b"tags:\n  team: \xff\xfe\n");
    vec![
        case(
            "syntax",
            &GOOD.replace("name: studio", "name: [studio"),
            "3:7",
            "illegal placement of ':' indicator",
            Some("quote values"),
        ),
        case(
            "tab-indent",
            &GOOD.replace("  name: comfyui", "\tname: comfyui"),
            "5:2",
            "tabs disallowed",
            Some("spaces, not tabs"),
        ),
        case(
            "syntax-plain",
            &GOOD.replace("name: studio", "name: [studio"),
            "3:7",
            "illegal placement",
            Some("check the indentation"),
        )
        .without(&["tabs"]),
        case(
            "version-type",
            &GOOD.replace("version: 1", "version: one"),
            "1:10",
            "expected a whole number",
            None,
        ),
        case(
            "days-type",
            &format!("{GOOD}storage:\n  outputs:\n    expire_after_days: thirty\n"),
            "10:24",
            "expected a whole number",
            None,
        ),
        case(
            "unknown-top-key",
            &GOOD.replace("region:", "regoin:"),
            "3:1",
            "unknown field `regoin`",
            Some("did you mean `region`?"),
        ),
        case(
            "unknown-nested-key",
            &GOOD.replace("  name: comfyui", "  nmae: comfyui"),
            "5:3",
            "unknown field `nmae`",
            Some("did you mean `name`?"),
        ),
        case(
            "unknown-plural",
            &GOOD.replace("node_role:", "node_roles:"),
            "7:3",
            "unknown field `node_roles`",
            Some("did you mean `node_role`?"),
        ),
        case(
            "bucket-name-uppercase",
            &format!("{GOOD}storage:\n  models:\n    name: Comfy-Models\n"),
            "10:11",
            "invalid bucket name `Comfy-Models`",
            Some("S3 bucket names"),
        ),
        case(
            "bucket-name-too-long",
            &format!(
                "{GOOD}storage:\n  outputs:\n    name: comfyui-outputs-for-the-concept-art-team-a-{{account}}-{{region}}\n"
            ),
            "10:11",
            "the limit is 63",
            None,
        ),
        case(
            "bucket-name-placeholder",
            &format!("{GOOD}storage:\n  inputs:\n    name: inputs-{{acount}}\n"),
            "10:11",
            "unknown placeholder `{acount}`",
            None,
        ),
        case(
            "missing-cluster",
            &GOOD.replace("cluster:\n  name: comfyui\n", ""),
            "",
            "missing field `cluster`",
            Some("add `cluster:`"),
        ),
        case(
            "missing-name",
            &GOOD.replace("name: studio\n", ""),
            "",
            "missing field `name`",
            Some("add the name"),
        ),
        case(
            "empty",
            "",
            "1:1",
            "the file is empty",
            Some("start from the commented platform.yaml"),
        ),
        case(
            "only-comments",
            "# nothing here\n\n",
            "1:1",
            "the file is empty",
            None,
        ),
        case(
            "alias-bomb",
            bomb,
            "14:",
            "too many values",
            Some("YAML aliases"),
        ),
        Case {
            name: "very-large",
            text: large.into_bytes(),
            at: "",
            message: "a platform file may be at most 1048576 bytes",
            hint: None,
            absent: Vec::new(),
        },
        Case {
            name: "not-utf8",
            text: not_utf8,
            at: "9:9",
            message: "not valid UTF-8",
            hint: None,
            absent: Vec::new(),
        },
        case(
            "bad-region",
            &GOOD.replace("us-west-2", "us-westt"),
            "3:9",
            "`us-westt` is not an AWS region name",
            Some("us-west-2"),
        ),
        case(
            "bad-account",
            &format!("{GOOD}account: \"12345678901\"\n"),
            "8:10",
            "is not an AWS account id",
            Some("12 digits"),
        ),
        case(
            "unsupported-version",
            &GOOD.replace("version: 1", "version: 2"),
            "1:10",
            "unsupported schema version `2`",
            Some("version: 1"),
        ),
        case(
            "reserved-tag",
            &format!("{GOOD}tags:\n  aws:owner: me\n"),
            "9:3",
            "reserved prefix",
            None,
        ),
        case(
            "node-role-arn",
            &GOOD.replace(
                "node_role: KarpenterNodeRole-comfyui",
                "node_role: arn:aws:iam::123456789012:role/KarpenterNodeRole-comfyui",
            ),
            "7:14",
            "takes the role name, not its ARN",
            Some("node_role: KarpenterNodeRole-comfyui"),
        ),
        case(
            "kms-other-region",
            &format!(
                "{GOOD}storage:\n  kms_key_arn: arn:aws:kms:eu-west-1:123456789012:key/abcd\n"
            ),
            "9:16",
            "the key is in `eu-west-1`",
            None,
        ),
        case(
            "duplicate-key",
            &GOOD.replace(
                "region: us-west-2\n",
                "region: us-west-2\nregion: eu-west-1\n",
            ),
            "4:1",
            "duplicate mapping key",
            Some("each key may appear once"),
        ),
        case(
            "zero-retention",
            &format!("{GOOD}storage:\n  outputs:\n    expire_after_days: 0\n"),
            "10:24",
            "between 1 and 36500",
            None,
        ),
        case(
            "platform-name",
            &GOOD.replace("name: studio", "name: Studio_A"),
            "2:7",
            "invalid platform name `Studio_A`",
            None,
        ),
        case(
            "cdn-price-class",
            &format!(
                "{GOOD}comfyui:\n  image: r/comfyui:v1\ncdn:\n  price_class: PriceClass_300\n"
            ),
            "11:16",
            "unknown price class `PriceClass_300`",
            Some("did you mean `PriceClass_"),
        ),
        case(
            "cdn-without-comfyui",
            &format!("{GOOD}cdn:\n  price_class: PriceClass_100\n"),
            "8:1",
            "`cdn` needs `comfyui`",
            Some("cdn.enabled: false"),
        ),
        case(
            "cdn-certificate-region",
            &format!(
                "{GOOD}comfyui:\n  image: r/comfyui:v1\ncdn:\n  aliases: [comfy.example.com]\n  certificate_arn: arn:aws:acm:us-west-2:123456789012:certificate/abc\n"
            ),
            "12:20",
            "the certificate is in `us-west-2`, not `us-east-1`",
            Some("only uses ACM certificates from us-east-1"),
        ),
        case(
            "cdn-aliases-without-certificate",
            &format!(
                "{GOOD}comfyui:\n  image: r/comfyui:v1\ncdn:\n  aliases: [comfy.example.com]\n"
            ),
            "11:12",
            "`cdn.aliases` need `cdn.certificate_arn`",
            None,
        ),
        case(
            "cdn-read-timeout",
            &format!(
                "{GOOD}comfyui:\n  image: r/comfyui:v1\ncdn:\n  origin:\n    read_timeout_seconds: 180\n"
            ),
            "12:27",
            "`cdn.origin.read_timeout_seconds` is 180",
            Some("from 1 to 120"),
        ),
        case(
            "cdn-internal-load-balancer",
            &format!("{GOOD}comfyui:\n  image: r/comfyui:v1\n  ingress:\n    scheme: internal\n"),
            "11:13",
            "CloudFront cannot reach an `internal` load balancer",
            Some("cdn.enabled: false"),
        ),
        case(
            "not-a-mapping",
            "- version: 1\n",
            "1:1",
            "expected a mapping",
            None,
        ),
        case(
            "two-documents",
            &format!("{GOOD}---\n{GOOD}"),
            "8:1",
            "more than one YAML document",
            Some("remove the extra `---`"),
        ),
        case(
            "unknown-access-policy",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws:iam::123456789012:role/Artists\n    policy: veiw\n"
            ),
            "10:13",
            "unknown access policy `veiw`",
            Some("did you mean `view`?"),
        ),
        case(
            "principal-not-an-arn",
            &format!("{GOOD}access:\n  - principal: Artists\n    policy: view\n"),
            "9:16",
            "invalid `principal` `Artists`: it is not an ARN",
            Some("IAM role or user ARN"),
        ),
        case(
            "principal-group",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws:iam::123456789012:group/artists\n    policy: view\n"
            ),
            "9:16",
            "only IAM roles and users can have access entries",
            None,
        ),
        case(
            "system-group",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws:iam::123456789012:role/Artists\n    policy: view\n    groups: [system:masters]\n"
            ),
            "11:13",
            "invalid Kubernetes group `system:masters`",
            Some("use an access policy"),
        ),
        case(
            "bad-addon-version",
            &format!("{GOOD}addons:\n  s3_csi_driver:\n    version: 2.1.0\n"),
            "10:14",
            "`2.1.0` is not an EKS add-on version",
            Some("v2.1.0-eksbuild.1"),
        ),
        case(
            "addon-configuration-not-an-object",
            &format!("{GOOD}addons:\n  s3_csi_driver:\n    configuration_values: \"[1, 2]\"\n"),
            "10:27",
            "invalid `configuration_values` for `aws-mountpoint-s3-csi-driver`",
            Some("a mapping"),
        ),
        // Issue 11: instance types with no GPU, that do not exist, or listed twice.
        case(
            "instance-type-without-gpu",
            &format!("{GOOD}  instance_types: [t3.micro]\n"),
            "8:20",
            "`t3.micro` is not an NVIDIA GPU instance type",
            Some("g6.2xlarge"),
        ),
        case(
            "instance-type-general-purpose",
            &format!("{GOOD}  instance_types: [g6.2xlarge, m5.large]\n"),
            "8:32",
            "`m5.large` is not an NVIDIA GPU instance type",
            None,
        ),
        case(
            "instance-type-inferentia",
            &format!("{GOOD}  instance_types: [inf2.xlarge]\n"),
            "8:20",
            "`inf2.xlarge` has AWS Inferentia2 chips, not NVIDIA GPUs",
            Some("CUDA"),
        ),
        case(
            "instance-type-typo",
            &format!("{GOOD}  instance_types: [g6.2xlarg]\n"),
            "8:20",
            "`g6.2xlarg` is not a g6 size",
            Some("did you mean `g6.2xlarge`?"),
        ),
        case(
            "instance-type-duplicate",
            &format!("{GOOD}  instance_types: [g6.2xlarge, g5.2xlarge, g6.2xlarge]\n"),
            "8:44",
            "`g6.2xlarge` is listed twice",
            Some("list each instance type once"),
        ),
        case(
            "instance-type-arm64",
            &format!("{GOOD}  instance_types: [g5g.xlarge]\n"),
            "8:20",
            "is arm64",
            None,
        ),
        // Issue 11: ARNs of another partition, wildcard principals, homoglyphs.
        case(
            "principal-china-partition",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws-cn:iam::123456789012:role/Artists\n    policy: view\n"
            ),
            "9:16",
            "the ARN is in partition `aws-cn`, but region `us-west-2` is in partition `aws`",
            Some("`arn:aws:iam::<account>:role/<name>`"),
        ),
        case(
            "principal-govcloud-partition",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws-us-gov:iam::123456789012:user/bob\n    policy: view\n"
            ),
            "9:16",
            "partition `aws-us-gov`",
            None,
        ),
        case(
            "policy-other-partition",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws:iam::123456789012:role/Artists\n    policy: arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSViewPolicy\n"
            ),
            "10:13",
            "partition `aws-cn`",
            Some("short name"),
        ),
        case(
            "kms-other-partition",
            &format!(
                "{GOOD}storage:\n  kms_key_arn: arn:aws-us-gov:kms:us-west-2:123456789012:key/abcd\n"
            ),
            "9:16",
            "partition `aws-us-gov`",
            None,
        ),
        case(
            "certificate-other-partition",
            &format!(
                "{GOOD}comfyui:\n  image: r/comfyui:v1\ncdn:\n  aliases: [comfy.example.com]\n  certificate_arn: arn:aws-cn:acm:us-east-1:123456789012:certificate/abc\n"
            ),
            "12:20",
            "partition `aws-cn`",
            None,
        ),
        case(
            "principal-wildcard",
            &format!(
                "{GOOD}access:\n  - principal: arn:aws:iam::123456789012:role/*\n    policy: view\n"
            ),
            "9:16",
            "wildcards are not allowed",
            Some("its own entry"),
        ),
        case(
            "principal-homoglyph",
            // `Artists` with a Cyrillic `і` (U+0456).
            &format!(
                "{GOOD}access:\n  - principal: arn:aws:iam::123456789012:role/Art\u{0456}sts\n    policy: view\n"
            ),
            "9:16",
            "`і` (U+0456) is not an ASCII character",
            None,
        ),
        case(
            "node-role-homoglyph",
            // `KarpenterNodeRole` with a Cyrillic `е` (U+0435).
            &GOOD.replace("KarpenterNodeRole-", "KarpenterNodeRol\u{0435}-"),
            "7:14",
            "`е` (U+0435) is not an ASCII character",
            Some("IAM role names"),
        ),
        // Issue 11: CIDRs with host bits, absurd image references and quantities.
        case(
            "cidr-host-bits",
            &format!(
                "{GOOD}comfyui:\n  image: r/comfyui:v1\n  ingress:\n    inbound_cidrs: [10.0.0.1/8]\n"
            ),
            "11:20",
            "`10.0.0.1/8` has host bits set",
            Some("`10.0.0.0/8`"),
        ),
        case(
            "image-reference-too-long",
            &format!(
                "{GOOD}comfyui:\n  image: registry.example.com/{}:v1\n",
                "a".repeat(5000)
            ),
            "9:10",
            "container runtimes allow at most 255",
            None,
        ),
        case(
            "memory-beyond-kubernetes",
            &format!("{GOOD}comfyui:\n  image: r/comfyui:v1\n  memory: 99999999Ei\n"),
            "10:11",
            "`99999999Ei` is more than Kubernetes can hold for `comfyui.memory`",
            Some("2^63-1"),
        ),
        // Issue 11: regions checked first, against the known ones.
        case(
            "region-uppercase",
            &GOOD.replace("us-west-2", "US-WEST-2"),
            "3:9",
            "region codes are lowercase",
            Some("did you mean `us-west-2`?"),
        )
        .without(&["bucket name"]),
        case(
            "region-unknown",
            &GOOD.replace("us-west-2", "us-west-22"),
            "3:9",
            "`us-west-22` is not an AWS region",
            Some("did you mean `us-west-2`?"),
        ),
        case(
            "region-typo",
            &GOOD.replace("us-west-2", "us-wset-2"),
            "3:9",
            "`us-wset-2` is not an AWS region",
            Some("did you mean `us-west-2`?"),
        ),
        // Issue 11: paths platform.yaml names are checked when it is read, at the value.
        case(
            "templates-dir-missing",
            &format!("{GOOD}templates_dir: ./nope\n"),
            "8:16",
            "`templates_dir`: cannot read",
            Some("built-in templates"),
        ),
        case(
            "kubeconfig-missing",
            &format!("{GOOD}comfyui:\n  image: r/comfyui:v1\nkubernetes:\n  kubeconfig: ./nope\n"),
            "11:15",
            "`kubernetes.kubeconfig`: cannot read",
            None,
        ),
        // Issue 11: plain words.
        case(
            "null-value",
            &format!("{GOOD}tags:\n  team:\n"),
            "9:7",
            "`team` needs a value",
            Some("write the value after `team:`"),
        )
        .without(&["Option<", "deserialize"]),
        case(
            "versioning-maybe",
            &format!("{GOOD}storage:\n  models:\n    versioning: maybe\n"),
            "10:17",
            "expected `true` or `false`\n",
            None,
        )
        .without(&["`ean"]),
        case(
            "infinity-for-a-number",
            &format!("{GOOD}  max_gpus: .inf\n"),
            "8:13",
            "`.inf` is YAML's infinity, not a number comfyplat can use",
            Some("whole number"),
        )
        .without(&["tabs"]),
        case(
            "nan-for-a-number",
            &format!("{GOOD}  max_gpus: .nan\n"),
            "8:13",
            "not a number comfyplat can use",
            None,
        )
        .without(&["tabs"]),
        case(
            "nested-too-deep",
            &format!("{GOOD}tags: {}\n", "[".repeat(10_000)),
            "8:",
            "nested too deeply",
            Some("unclosed"),
        )
        .without(&["tabs"]),
        case(
            "unknown-addon",
            &format!("{GOOD}addons:\n  vpc_cni: {{}}\n"),
            "9:3",
            "unknown field `vpc_cni`",
            None,
        ),
    ]
}

/// An endpoint standing in for AWS that counts the connections made to it.
fn counting_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (endpoint, connections)
}

/// comfyplat with `args`, every AWS endpoint at `endpoint`.
fn comfyplat(endpoint: &str, args: &[&str]) -> Run {
    Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_comfyplat"))
            .args(args)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("COMFYPLAT_KUBECONFIG")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run comfyplat"),
    )
}

fn assert_no_connection(connections: &AtomicUsize) {
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a bad input led to an API call"
    );
}

#[test]
fn malformed_platform_files_are_refused_with_a_location_before_any_api_call() {
    // Every AWS endpoint points here; nothing may connect.
    let (endpoint, connections) = counting_endpoint();

    let cases = corpus();
    assert!(cases.len() >= 15);
    let workspace = Workspace::new(GOOD);
    workspace.run(&endpoint, &["validate"]).expect(0);
    for case in &cases {
        let path = write_file(
            workspace.dir.path(),
            &format!("{}.yaml", case.name),
            &case.text,
        );
        let shown = path.display().to_string();
        for command in [
            vec!["validate"],
            vec!["plan"],
            vec!["apply", "--yes"],
            vec!["destroy", "--yes"],
        ] {
            let mut args = vec!["-f", shown.as_str()];
            args.extend(command.iter().copied());
            let run = Run::from(
                std::process::Command::new(env!("CARGO_BIN_EXE_comfyplat"))
                    .args(&args)
                    .env("AWS_ENDPOINT_URL", &endpoint)
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .env("NO_COLOR", "1")
                    .output()
                    .expect("run comfyplat"),
            );
            let context = format!("case `{}`, {:?}:\n{}", case.name, command, run.stderr);
            assert_eq!(run.code, 1, "{context}");
            let prefix = format!("error: {shown}:{}", case.at);
            assert!(
                run.stderr.starts_with(&prefix),
                "expected `{prefix}` in {context}"
            );
            let location = run.stderr[format!("error: {shown}:").len()..]
                .split(": ")
                .next()
                .unwrap_or_default()
                .to_string();
            let mut parts = location.split(':');
            let line_column = (
                parts.next().and_then(|l| l.parse::<usize>().ok()),
                parts.next().and_then(|c| c.parse::<usize>().ok()),
            );
            assert!(
                matches!(line_column, (Some(line), Some(column)) if line > 0 && column > 0),
                "no line:column in {context}"
            );
            assert!(
                run.stderr.contains(case.message),
                "expected `{}` in {context}",
                case.message
            );
            if let Some(hint) = case.hint {
                assert!(
                    run.stderr.contains("hint: ") && run.stderr.contains(hint),
                    "expected hint `{hint}` in {context}"
                );
            }
            for absent in &case.absent {
                assert!(
                    !run.stderr.contains(absent),
                    "`{absent}` must not appear in {context}"
                );
            }
            assert!(run.stdout.is_empty(), "nothing on stdout for {context}");
        }
    }
    assert_no_connection(&connections);
}

/// `-f /dev/zero` grew to 17 GB before the size was checked: at most the limit and one
/// byte is read, and the size error comes at once.
#[test]
fn an_endless_platform_file_is_refused_quickly_for_its_size() {
    let (endpoint, connections) = counting_endpoint();
    for file in ["/dev/zero", "/dev/urandom"] {
        for command in ["validate", "plan"] {
            let started = std::time::Instant::now();
            let run = comfyplat(&endpoint, &["-f", file, command]);
            let elapsed = started.elapsed();
            assert_eq!(run.code, 1, "{file} {command}: {}", run.stderr);
            assert!(
                run.stderr.starts_with(&format!("error: {file}:"))
                    && run.stderr.contains(
                        "the file is larger than 1048576 bytes; a platform file may be at most 1048576 bytes"
                    ),
                "{file} {command}: {}",
                run.stderr
            );
            assert!(
                elapsed < std::time::Duration::from_secs(10),
                "{file} {command} took {elapsed:?}"
            );
        }
    }
    assert_no_connection(&connections);
}

/// `US-WEST-2` produced three bucket-name errors first: the region is checked first, and the
/// checks that depend on it are not run against a wrong one.
#[test]
fn a_wrong_region_is_reported_alone_with_a_suggestion() {
    let workspace = Workspace::new(&GOOD.replace("us-west-2", "US-WEST-2"));
    let run = workspace.run("http://127.0.0.1:9", &["validate"]).expect(1);
    let file = workspace.file.display().to_string();
    assert_eq!(
        run.stderr.matches(&format!("{file}:")).count(),
        1,
        "one problem only:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "{file}:3:9: `US-WEST-2` is not an AWS region name"
        )) && run.stderr.contains("hint: did you mean `us-west-2`?"),
        "{}",
        run.stderr
    );
}

/// clap's usage errors exited 2, which `plan --detailed-exitcode` means as "changes".
#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    let (endpoint, connections) = counting_endpoint();
    let run = comfyplat(&endpoint, &["plan", "--detailed-exitcode", "--typo"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("unexpected argument '--typo'"),
        "{}",
        run.stderr
    );
    let run = comfyplat(&endpoint, &["frobnicate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = comfyplat(&endpoint, &["--version"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("comfyplat "), "{}", run.stdout);
    let run = comfyplat(&endpoint, &["plan", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "Exit codes:",
        "0    success (for `plan --detailed-exitcode`: no changes)",
        "command-line usage error",
        "2    `plan --detailed-exitcode` only: success, and there are changes",
    ] {
        assert!(run.stdout.contains(line), "`{line}` in {}", run.stdout);
    }
    assert_no_connection(&connections);
}

/// A `--kubeconfig` that is not there was found after five AWS calls, its cause said twice.
#[test]
fn a_missing_kubeconfig_option_is_refused_before_any_call_and_said_once() {
    let (endpoint, connections) = counting_endpoint();
    let workspace = Workspace::new(&format!("{GOOD}comfyui:\n  image: r/comfyui:v1\n"));
    let file = workspace.file.display().to_string();
    for command in ["validate", "plan"] {
        let run = comfyplat(&endpoint, &["-f", &file, "--kubeconfig", "./nope", command]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.starts_with(
                "error: `--kubeconfig`: cannot read `./nope`: No such file or directory"
            ),
            "{}",
            run.stderr
        );
        assert_eq!(
            run.stderr.matches("No such file").count(),
            1,
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    }
    // The file's own kubeconfig is overridden by the option, so only the option is checked.
    let workspace = Workspace::new(&format!(
        "{GOOD}comfyui:\n  image: r/comfyui:v1\nkubernetes:\n  kubeconfig: ./also-missing\n"
    ));
    let file = workspace.file.display().to_string();
    let run = comfyplat(&endpoint, &["-f", &file, "--kubeconfig", &file, "validate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_connection(&connections);
}

#[test]
fn several_problems_are_reported_together_each_at_its_place() {
    let workspace = Workspace::new(
        "version: 1\nname: studio\nregion: us-west-2\naccount: \"1\"\ncluster:\n  name: comfyui\nkarpenter:\n  node_role: r\n\
         storage:\n  models:\n    name: AB\n  outputs:\n    expire_after_days: -1\n",
    );
    let run = workspace.run("http://127.0.0.1:9", &["validate"]).expect(1);
    let file = workspace.file.display().to_string();
    for expected in [
        format!("{file}:4:10: "),
        format!("{file}:11:11: "),
        format!("{file}:13:24: "),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "expected `{expected}` in\n{}",
            run.stderr
        );
    }
}

#[test]
fn the_shipped_platform_files_are_valid() {
    for file in ["platform.yaml", "examples/sandbox.yaml"] {
        let path = repo_root().join(file);
        let run = Run::from(
            std::process::Command::new(env!("CARGO_BIN_EXE_comfyplat"))
                .arg("-f")
                .arg(&path)
                .arg("validate")
                .output()
                .expect("run comfyplat"),
        );
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        assert!(run.stdout.contains("is valid"), "{file}: {}", run.stdout);
    }
}
