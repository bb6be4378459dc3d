"""Syntax and consistency checks of the Kubernetes manifests: every document
parses, names and selectors agree, and the flags passed to the binaries are
flags they accept (checked against `tpserve help` / `tpserve-worker --help`).
"""
import os
import subprocess
import sys
import unittest

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ManifestTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(REPO, "k8s", "tpserve.yaml")) as f:
            self.docs = [d for d in yaml.safe_load_all(f) if d]
        self.by_kind = {}
        for d in self.docs:
            self.by_kind.setdefault(d["kind"], []).append(d)

    def test_selectors_match_pod_labels(self):
        for kind in ("StatefulSet", "Deployment"):
            for d in self.by_kind[kind]:
                labels = d["spec"]["template"]["metadata"]["labels"]
                for k, v in d["spec"]["selector"]["matchLabels"].items():
                    self.assertEqual(labels.get(k), v, d["metadata"]["name"])

    def test_worker_addresses_match_the_statefulset(self):
        sts = self.by_kind["StatefulSet"][0]
        replicas = sts["spec"]["replicas"]
        service = sts["spec"]["serviceName"]
        coord = self.by_kind["Deployment"][0]["spec"]["template"]["spec"]
        args = coord["containers"][0]["args"]
        workers = [a for a in args if a.startswith("--workers=")][0]
        addresses = workers.split("=", 1)[1].split(",")
        self.assertEqual(len(addresses), replicas)
        for i, a in enumerate(addresses):
            self.assertTrue(a.startswith(f"{sts['metadata']['name']}-{i}.{service}:"), a)

    def test_flags_exist(self):
        binary = os.environ.get("TPSERVE_BIN")
        if not binary:
            self.skipTest("TPSERVE_BIN not set")
        worker_bin = os.path.join(os.path.dirname(os.path.dirname(binary)),
                                  "worker", "tpserve-worker")
        helps = {
            "tpserve-coordinator": subprocess.run(
                [binary, "help"], capture_output=True, text=True).stdout,
            "tpserve-worker": subprocess.run(
                [worker_bin, "--help"], capture_output=True, text=True).stdout,
        }
        for kind in ("StatefulSet", "Deployment"):
            for d in self.by_kind[kind]:
                for c in d["spec"]["template"]["spec"]["containers"]:
                    help_text = helps[c["command"][0]]
                    for a in c.get("args", []):
                        flag = a.split("=", 1)[0]
                        self.assertIn(flag, help_text, f"{c['name']}: {flag}")


if __name__ == "__main__":
    sys.exit(unittest.main())
