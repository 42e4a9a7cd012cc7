#!/usr/bin/env python3
"""Packaging, cheaply (no dpkg-buildpackage; tools/build-deb does that):
what meson installs where, the debian/ files against meson and tools/deps,
the man pages against the programs' own --help, the README's apt line,
and the style check's skip without clang-format.

Usage: test_packaging.py SOURCE_ROOT BUILD_ROOT P2PD P2PCTL
"""
import json
import os
import re
import subprocess
import sys
import tempfile

SRC, BUILD, P2PD, P2PCTL = sys.argv[1:5]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def read(*path):
    with open(os.path.join(SRC, *path)) as f:
        return f.read()


def installed():
    """Installed file -> source, as meson would install them (by basename)."""
    with open(os.path.join(BUILD, "meson-info", "intro-installed.json")) as f:
        return {os.path.relpath(dst, PREFIX): src for src, dst in json.load(f).items()}


with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
    OPTS = {o["name"]: o["value"] for o in json.load(f)}
PREFIX = OPTS["prefix"]


def test_install_layout():
    inst = installed()
    want = ["sbin/p2pd", "bin/p2pctl", "lib/sysusers.d/p2pd.conf",
            "share/bash-completion/completions/p2pctl"]
    want.append(os.path.join(OPTS["sysconfdir"], "p2pd", "p2pd.json"))
    unitdir = OPTS["systemdunitdir"] or "lib/systemd/system"
    want.append(os.path.join(unitdir, "p2pd.service"))
    if os.path.exists(os.path.join(BUILD, "doc", "p2pd.8")):
        want += ["share/man/man8/p2pd.8", "share/man/man1/p2pctl.1", "share/man/man5/p2pd.json.5"]
    for w in want:
        check(any(os.path.normpath(k) == os.path.normpath(w) or k.endswith("/" + w) for k in inst),
              "not installed: %s (installed: %s)" % (w, sorted(inst)))
    tools = [k for k in inst if os.path.basename(k) in ("p2psim", "p2pload")]
    check(bool(tools) == OPTS["install_tools"], "install_tools=%s but tools installed: %s" % (OPTS["install_tools"], tools))
    unit = open(os.path.join(BUILD, "daemon", "p2pd.service")).read()
    check(re.search(r"^ExecStart=%s/p2pd " % re.escape(os.path.join(PREFIX, OPTS["sbindir"])), unit, re.M),
          "the unit's ExecStart is not sbindir/p2pd")


def test_group_is_one_name():
    sysusers = read("daemon", "p2pd.sysusers")
    groups = re.findall(r"^g\s+(\S+)", sysusers, re.M)
    check(groups == ["p2pd"], "sysusers.d groups: %r" % groups)
    check(re.search(r"^Group=p2pd$", read("daemon", "p2pd.service.in"), re.M), "the unit lacks Group=p2pd")
    user = re.search(r"^User=(\S+)$", read("daemon", "p2pd.service.in"), re.M)
    check(user and user.group(1) != "p2pd", "a dynamic user named like the static group is refused by systemd")
    check('#define CTL_SYSTEM_GROUP "p2pd"' in read("tools", "p2pctl", "sockpath.h"), "p2pctl names another group")


def deps_packages():
    m = re.search(r"pkgs=\(([^)]*)\)", read("tools", "deps"))
    return set(m.group(1).split())


def test_debian_files():
    meson_version = re.search(r"version : '([^']+)'", read("meson.build")).group(1)
    changelog = read("debian", "changelog")
    top = re.match(r"p2pd \(([^)]+)\)", changelog)
    check(top and top.group(1).split("-")[0] == meson_version,
          "debian/changelog %s, meson.build %s" % (top and top.group(1), meson_version))
    control = read("debian", "control")
    bd = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S).group(1)
    names = {re.split(r"[\s(]", x.strip())[0] for x in bd.split(",") if x.strip()}
    check(not (names - {"debhelper-compat"} - deps_packages()),
          "Build-Depends not in tools/deps: %s" % (names - {"debhelper-compat"} - deps_packages()))
    check(re.search(r"^License: ISC$", read("debian", "copyright"), re.M) and "license : 'ISC'" in read("meson.build")
          and read("LICENSE").startswith("ISC License"), "ISC in LICENSE, meson.build and debian/copyright")
    rules = read("debian", "rules")
    for opt in re.findall(r"-D(\w+)=", rules):
        check(opt in OPTS, "debian/rules sets -D%s, which meson does not have" % opt)
    check("-Dman=enabled" in rules and "installsysusers" in rules, "debian/rules: man pages and sysusers")
    check(os.access(os.path.join(SRC, "debian", "rules"), os.X_OK), "debian/rules is not executable")
    check(read("debian", "source", "format").strip() == "3.0 (native)", "debian/source/format")


def man_text(page):
    path = os.path.join(BUILD, "doc", page)
    return open(path).read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")


def test_man_pages():
    if not os.path.exists(os.path.join(BUILD, "doc", "p2pd.8")):
        check(OPTS["man"] != "enabled", "-Dman=enabled but no man pages built")
        return
    ctl = man_text("p2pctl.1")
    helptext = subprocess.run([P2PCTL, "--help"], capture_output=True, text=True).stdout
    for cmd in re.findall(r"^  ([a-z]+)\b", helptext[helptext.index("commands:"):], re.M):
        check(re.search(r"^%s\b" % cmd, ctl, re.M), "p2pctl.1 lacks the command %s" % cmd)
    for opt in set(re.findall(r"(--[a-z-]+)", helptext)):
        check(opt in ctl, "p2pctl.1 lacks %s" % opt)
    d = man_text("p2pd.8")
    for opt in set(re.findall(r"(--[a-z-]+)", subprocess.run([P2PD, "--help"], capture_output=True, text=True).stdout)):
        check(opt in d, "p2pd.8 lacks %s" % opt)
    conf = man_text("p2pd.json.5")
    for key in json.loads(read("daemon", "p2pd.json")):
        check(key in conf, "p2pd.json.5 lacks the key %s" % key)
    if subprocess.run(["sh", "-c", "command -v man"], capture_output=True).returncode != 0:
        return  # no man-db: the text checks above still ran
    for page in ("p2pd.8", "p2pctl.1", "p2pd.json.5"):
        r = subprocess.run(["man", "-l", os.path.join(BUILD, "doc", page)], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        check(r.returncode == 0 and "NAME" in r.stdout and "warning" not in r.stderr,
              "man -l %s: %r" % (page, r.stderr))


def test_readme_apt_line():
    line = re.search(r"^apt-get install (.*)$", read("README.md"), re.M)
    check(line and deps_packages() <= set(line.group(1).split()),
          "README's apt line lacks %s" % (deps_packages() - set(line.group(1).split()) if line else "everything"))


def test_format_check_skips_without_clang_format():
    with tempfile.TemporaryDirectory() as bin_dir:
        for tool in ("bash", "dirname"):
            os.symlink(subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True, text=True).stdout.strip(),
                       os.path.join(bin_dir, tool))
        r = subprocess.run([os.path.join(SRC, "tools", "check-format")], capture_output=True, text=True,
                           env={"PATH": bin_dir})
        check(r.returncode == 77, "check-format without clang-format: exit %d (%r)" % (r.returncode, r.stderr))


for name, fn in sorted(globals().items()):
    if name.startswith("test_") and callable(fn):
        before = len(failures)
        fn()
        print("%s %s" % ("ok  " if len(failures) == before else "FAIL", name))
for f in failures:
    print("  " + f)
sys.exit(1 if failures else 0)
