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
        },
        Case {
            name: "not-utf8",
            text: not_utf8,
            at: "9:9",
            message: "not valid UTF-8",
            hint: None,
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
        case(
            "unknown-addon",
            &format!("{GOOD}addons:\n  vpc_cni: {{}}\n"),
            "9:3",
            "unknown field `vpc_cni`",
            None,
        ),
    ]
}

#[test]
fn malformed_platform_files_are_refused_with_a_location_before_any_api_call() {
    // Every AWS endpoint points here; nothing may connect.
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
            assert!(run.stdout.is_empty(), "nothing on stdout for {context}");
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a bad platform file led to an API call"
    );
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
