#!/usr/bin/env python3
"""moto in server mode on 127.0.0.1, optionally seeded with the sandbox world.

    python aws_emulator.py --port 0 --ready-file PATH [--seed sandbox|none] [--region us-west-2]
                           [--kubeconfig PATH] [--verbose-kube]

moto (+ moto_patches, + eks_extension) serves AWS on http://127.0.0.1:N. With --seed sandbox
(the default) seed.py creates the pre-existing world (VPC, subnets, EKS cluster
comfyui-sandbox, node role, people roles, unowned bucket) and the cluster gets a reachable
Kubernetes API, as a real EKS cluster has: eks_kube.py starts kube_server.py's API server in
this process (HTTPS on 127.0.0.1, a free port, a fresh CA), seeds it with what the platform
team installed (Karpenter v1 CRDs, IngressClass alb, NVIDIA device plugin DaemonSet), and
DescribeCluster answers with its endpoint and CA (certificateAuthority.data). Its controller
stand-ins act on moto in-process (ALBs for alb Ingresses, IAM lookups for EC2NodeClasses), and
EKS add-ons put their objects into it (the CSIDriver s3.csi.aws.com of
aws-mountpoint-s3-csi-driver). Clients authenticate with a `k8s-aws-v1.` token, e.g. from the
kubeconfig written to --kubeconfig PATH (default: a temp dir), whose exec plugin runs
`aws eks get-token` of this virtualenv. --seed none starts no Kubernetes API.

When the server is up and seeding is done, the ready file receives (atomically)
    {"port": N, "pid": PID, "endpoint": "http://127.0.0.1:N", "region": REGION,
     "seed": {...facts of seed_sandbox...} | null,
     "kube": {"endpoint": "https://127.0.0.1:K", "port": K,
              "ca_data": "<base64 PEM>", "ca_file": "<PEM path>",
              "kubeconfig": "<path>"} | null}
The process then runs until SIGTERM/SIGINT, stops both servers, removes its temp dirs and the
kubeconfig, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from ready_file import write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# Nothing may ever reach a real AWS endpoint: fake credentials and no profile.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# Let moto know the AWS managed IAM policies (AmazonEKSWorkerNodePolicy, ...),
# as a real account does. Can be overridden by setting it to "false".
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

HOST = "127.0.0.1"




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--seed", choices=["sandbox", "none"], default="sandbox")
    parser.add_argument("--region", default="us-west-2")
    parser.add_argument("--kubeconfig", help="where to write the seeded cluster's kubeconfig "
                                             "(default: a temp dir); removed at exit")
    parser.add_argument("--verbose-kube", action="store_true", help="log every Kubernetes API request")
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    import moto_patches

    moto_patches.apply()

    import eks_extension

    eks_extension.install()

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # Port 0 is handed to the server itself: the kernel picks a free port at
    # bind time and we read it back, so there is no window in which another
    # process could take it.
    server = ThreadedMotoServer(ip_address=HOST, port=args.port, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    endpoint = f"http://{HOST}:{port}"
    print(f"moto listening on {endpoint}", flush=True)

    kube = None
    try:
        seeded = kube_info = None
        if args.seed == "sandbox":
            from seed import seed_sandbox

            seeded = seed_sandbox(endpoint, args.region)
            print("seeded sandbox: " + json.dumps(seeded), flush=True)
            import eks_kube

            kube, kube_info = eks_kube.start(args.region, seeded["account_id"], seeded["cluster_name"],
                                             args.kubeconfig, verbose=args.verbose_kube)
            print(f"Kubernetes API of {seeded['cluster_name']} on {kube_info['endpoint']}", flush=True)
        write_json_atomic(
            args.ready_file,
            {
                "port": port,
                "pid": os.getpid(),
                "endpoint": endpoint,
                "region": args.region,
                "seed": seeded,
                "kube": kube_info,
            },
        )
    except Exception:
        traceback.print_exc()
        if kube is not None:
            eks_kube.stop(kube)
        server.stop()
        return 1

    while not stop.wait(3600):
        pass
    print("stopping moto", flush=True)
    if kube is not None:
        eks_kube.stop(kube)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
