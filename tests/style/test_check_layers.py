#!/usr/bin/env python3
"""test_check_layers.py CHECK_LAYERS [CC]: the layering check checks.

Builds tiny objects in a temporary directory, named like files of daemon/
(node.c is the hub, tunnel.c a service far above it), and runs
tools/check-layers on them with --objdir: a call or an include that goes
up or sideways must fail it (exit 1, the edge named), one that goes down
must pass (exit 0).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

CHECK = None
CC = os.environ.get("CC", "cc")


class Tree:
    """daemon/ sources in src/daemon, their objects in obj/."""

    def __init__(self, tmp):
        self.src = os.path.join(tmp, "src")
        self.obj = os.path.join(tmp, "obj")
        os.makedirs(os.path.join(self.src, "daemon"))
        os.makedirs(self.obj)

    def add(self, name, text):
        path = os.path.join(self.src, "daemon", name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        if name.endswith(".c"):
            subprocess.run([CC, "-c", "-o", os.path.join(self.obj, name + ".o"),
                            "-I", os.path.join(self.src, "daemon"), path],
                           check=True)

    def check(self):
        p = subprocess.run([sys.executable, CHECK, "--objdir", self.obj,
                            os.path.join(self.src, "build"), self.src],
                           capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="check-layers-")
        self.t = Tree(self.tmp)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_a_call_up_fails_naming_the_edge(self):
        self.t.add("tunnel.c", "void tunnel_poke(void);\n"
                               "void tunnel_poke(void) {}\n")
        self.t.add("node.c", "void tunnel_poke(void);\n"
                             "void node_run(void);\n"
                             "void node_run(void) { tunnel_poke(); }\n")
        rc, out = self.t.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("node.c calls tunnel.c (tunnel_poke)", out)
        self.assertIn("node.c is layer hub, tunnel.c is layer tunnel", out)
        self.assertIn("1 problems", out)

    def test_a_call_down_passes(self):
        self.t.add("node.c", "void node_run(void);\nvoid node_run(void) {}\n")
        self.t.add("tunnel.c", "void node_run(void);\n"
                               "void tunnel_poke(void);\n"
                               "void tunnel_poke(void) { node_run(); }\n")
        rc, out = self.t.check()
        self.assertEqual(rc, 0, out)
        self.assertIn("2 objects, 1 call edges", out)
        self.assertIn("0 problems", out)

    def test_a_call_sideways_fails(self):
        # punch and relay share a layer: neither may call the other.
        self.t.add("relay.c", "void relay_open(void);\n"
                              "void relay_open(void) {}\n")
        self.t.add("punch.c", "void relay_open(void);\n"
                              "void punch_go(void);\n"
                              "void punch_go(void) { relay_open(); }\n")
        rc, out = self.t.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("punch.c calls relay.c (relay_open)", out)

    def test_static_functions_are_no_edges(self):
        # A static of the same name is not callable from another object.
        self.t.add("tunnel.c", "static void helper(void) {}\n"
                               "void tunnel_poke(void);\n"
                               "void tunnel_poke(void) { helper(); }\n")
        self.t.add("node.c", "void node_run(void);\nvoid node_run(void) {}\n")
        rc, out = self.t.check()
        self.assertEqual(rc, 0, out)

    def test_an_include_up_fails(self):
        self.t.add("tunnel.h", "void tunnel_poke(void);\n")
        self.t.add("node.c", '#include "tunnel.h"\n'
                             "void node_run(void);\nvoid node_run(void) {}\n")
        rc, out = self.t.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("node.c includes tunnel.h (#include)", out)

    def test_a_file_in_no_layer_fails(self):
        self.t.add("stray.c", "void stray(void);\nvoid stray(void) {}\n")
        self.t.add("node.c", "void stray(void);\n"
                             "void node_run(void);\n"
                             "void node_run(void) { stray(); }\n")
        rc, out = self.t.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("stray.c: not in any layer", out)

    def test_no_objects_fails(self):
        rc, out = self.t.check()
        self.assertEqual(rc, 1, out)
        self.assertIn("no objects", out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    CHECK = sys.argv[1]
    if len(sys.argv) > 2:
        CC = sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
