"""The package a firmware or Linux developer consumes (docs/device.md,
"Packaging"), tested the way they would use it, outside the tree:

- `cmake --install` of the full build (MQIM_BUILD_DIR) installs the two
  executables, the libraries, headers, the CMake package, the pkg-config
  files and the LICENSE;
- a device-only configure (-DMQIM_BUILD_GATEWAY=OFF) finds none of the
  gateway's packages (Paho, OpenSSL, cJSON) and still builds and installs
  mqim::device_posix;
- tests/package/consumer, copied into a temp dir, is built three ways:
  find_package(mqim CONFIG COMPONENTS device posix), pkg-config
  (mqim-device-posix), and include(device/sources.cmake); each binary sends
  a message over TLS through a real Mosquitto and the real gateway, and bob's
  `mqim` CLI receives all three.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import SRC, Env  # noqa: E402

BUILD = os.environ.get("MQIM_BUILD_DIR", os.path.join(SRC, "build", "test"))
JOBS = os.environ.get("MQIM_PACKAGE_JOBS", "2")
# Cache entries the gateway's packages leave behind when they are searched for.
GATEWAY_PACKAGE_CACHE = re.compile(r"^(eclipse-paho-mqtt-c_DIR|OPENSSL_[A-Z_]+|CJSON_[A-Z_]+|pkgcfg_lib_CJSON_\w+)"
                                   r"(:\w+)?=", re.M)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), r.returncode, r.stdout[-3000:],
                                                         r.stderr[-3000:]))
    return r


def header_version():
    with open(os.path.join(SRC, "common", "include", "mqim", "version.h")) as f:
        text = f.read()
    return ".".join(re.search(r"^#define MQIM_VERSION_%s +(\d+)$" % p, text, re.M).group(1)
                    for p in ("MAJOR", "MINOR", "PATCH"))


class Package(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mqim-pkg-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def libdir(self, prefix):
        pcs = glob.glob(os.path.join(prefix, "lib*", "**", "pkgconfig", "mqim-device.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, pcs)
        return os.path.dirname(os.path.dirname(pcs[0]))

    def test_full_install(self):
        """cmake --install of the full build: executables as before, plus the package."""
        prefix = os.path.join(self.tmp, "full")
        run(["cmake", "--install", BUILD, "--prefix", prefix])
        for exe in ("mqim", "mqim-gateway"):
            self.assertTrue(os.access(os.path.join(prefix, "bin", exe), os.X_OK), exe)
        lib = self.libdir(prefix)
        for name in ("mqim_common", "mqim_device", "mqim_device_host", "mqim_device_posix"):
            self.assertTrue(os.path.isfile(os.path.join(lib, "lib%s.a" % name)), name)
        for rel in ("include/mqim/client.h", "include/mqim/version.h", "include/mqim/status.h",
                    "include/mqim/posix/mqim_posix_tcp.h", "include/mqim/mbedtls/mqim_tls.h",
                    "share/doc/mqim/LICENSE", "share/doc/mqim/CHANGELOG.md",
                    "share/man/man1/mqim.1", "share/man/man8/mqim-gateway.8"):
            self.assertTrue(os.path.isfile(os.path.join(prefix, rel)), rel)
        for rel in ("cmake/mqim/mqimConfig.cmake", "cmake/mqim/mqimConfigVersion.cmake",
                    "cmake/mqim/mqimTargets.cmake", "pkgconfig/mqim-device-posix.pc"):
            self.assertTrue(os.path.isfile(os.path.join(lib, rel)), rel)
        # no private header of the library
        self.assertFalse(os.path.exists(os.path.join(prefix, "include", "mqim", "client_internal.h")))
        with open(os.path.join(lib, "pkgconfig", "mqim-device.pc")) as f:
            pc = f.read()
        self.assertIn("SPDX-License-Identifier: MIT", pc)
        self.assertRegex(pc, r"(?m)^Version: %s$" % re.escape(header_version()))

    def test_device_only_consumers(self):
        """Device-only build and install; three out-of-tree builds of the consumer run against the stack."""
        version = header_version()
        dev, prefix = os.path.join(self.tmp, "device-only"), os.path.join(self.tmp, "prefix")
        run(["cmake", "-S", SRC, "-B", dev, "-DMQIM_BUILD_GATEWAY=OFF", "-DMQIM_BUILD_TESTS=OFF",
             "-DCMAKE_BUILD_TYPE=Debug"])
        with open(os.path.join(dev, "CMakeCache.txt")) as f:
            cache = f.read()
        self.assertEqual(GATEWAY_PACKAGE_CACHE.findall(cache), [], "a device-only configure looked for these")
        self.assertRegex(cache, r"(?m)^CMAKE_PROJECT_VERSION:STATIC=%s$" % re.escape(version))
        run(["cmake", "--build", dev, "-j", JOBS, "--target", "mqim_device", "mqim_device_posix", "mqim_device_host"])
        run(["cmake", "--install", dev, "--prefix", prefix])
        self.assertFalse(os.path.exists(os.path.join(prefix, "bin", "mqim-gateway")))
        lib = self.libdir(prefix)

        src = os.path.join(self.tmp, "consumer")
        shutil.copytree(os.path.join(HERE, "consumer"), src)
        binaries = {}
        # 1. the CMake package
        b = os.path.join(self.tmp, "build-package")
        run(["cmake", "-S", src, "-B", b, "-DMQIM_CONSUME=package", "-DCMAKE_PREFIX_PATH=" + prefix])
        run(["cmake", "--build", b])
        binaries["package"] = os.path.join(b, "mqim_consumer")
        # 2. pkg-config, as a Makefile would call it
        penv = dict(os.environ, PKG_CONFIG_PATH=os.path.join(lib, "pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "mqim-device-posix"], env=penv).stdout.split()
        pc_version = run(["pkg-config", "--modversion", "mqim-device"], env=penv).stdout.strip()
        self.assertEqual(pc_version, version)
        binaries["pkg-config"] = os.path.join(self.tmp, "consumer-pc")
        run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", '-DMQIM_EXPECTED_VERSION="%s"' % pc_version,
             os.path.join(src, "consumer.c"), "-o", binaries["pkg-config"]] + flags)
        # 3. the source lists, included from another project
        b = os.path.join(self.tmp, "build-sources")
        run(["cmake", "-S", src, "-B", b, "-DMQIM_CONSUME=sources", "-DMQIM_ROOT=" + SRC])
        run(["cmake", "--build", b, "-j", JOBS])
        binaries["sources"] = os.path.join(b, "mqim_consumer")
        # a component the package does not have is an error
        bad = os.path.join(self.tmp, "bad")
        os.makedirs(bad)
        with open(os.path.join(bad, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.16)\nproject(bad LANGUAGES NONE)\n"
                    "find_package(mqim CONFIG REQUIRED COMPONENTS device gateway)\n")
        r = subprocess.run(["cmake", "-S", bad, "-B", os.path.join(bad, "b"), "-DCMAKE_PREFIX_PATH=" + prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no component 'gateway'", r.stdout + r.stderr)

        with Env(tls=True) as env:
            ca = os.path.join(env.dir, "pki", "ca.crt")
            for i, (how, exe) in enumerate(sorted(binaries.items())):
                state = os.path.join(env.dir, "consumer-" + how)
                os.makedirs(state)
                r = subprocess.run([exe, "127.0.0.1", str(env.tls_port), ca, state, "alice",
                                    env.passwords["alice"], "bob", "built with " + how],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, how + ": " + r.stdout + r.stderr)
                self.assertIn("mqim %s\n" % version, r.stdout)
                self.assertIn("sent seq=%d\n" % (i + 1), r.stdout)
            r = env.mqim("bob", "tab", "listen", 3)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            got = re.findall(r"(?m)^\[\d+\] alice(?:/\S+)? -> bob: (.*)$", r.stdout)
            self.assertEqual(got, ["built with " + how for how in sorted(binaries)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
