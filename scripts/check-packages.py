#!/usr/bin/env python3
"""Checks that the Conan recipe and the vcpkg port package what `cmake --install` installs.

Neither tool needs to be present: this replays what each does, with the settings read from its
files, and compares the result with a reference prefix made by a plain `cmake --install`.

- Conan: only the files the recipe exports (`exports_sources`) are configured, with the recipe's
  cache variables and install directories, and installed; the package adds licenses/LICENSE.
- vcpkg: the tree is configured with the portfile's OPTIONS and installed;
  vcpkg_cmake_config_fixup then moves CONFIG_PATH to share/<port>, next to copyright and usage.

Also checks versions (version.hpp, vcpkg.json), the CMake package and target names, that
vcpkg.json depends on a port for every Boost library the headers include, and that both require
OpenSSL once CMakeLists.txt sets BIFROST_NEEDS_OPENSSL ON.

    scripts/check-packages.py --reference <prefix> --work <scratch dir>
"""
import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
errors = []


def check(ok, message):
    if not ok:
        errors.append(message)


def tree(prefix):
    """Relative path -> content of every file under `prefix`."""
    return {p.relative_to(prefix).as_posix(): p.read_bytes()
            for p in sorted(Path(prefix).rglob("*")) if p.is_file()}


def compare(what, got, expected):
    for name in sorted(expected.keys() - got.keys()):
        check(False, f"{what}: missing {name}")
    for name in sorted(got.keys() - expected.keys()):
        check(False, f"{what}: unexpected {name}")
    for name in sorted(got.keys() & expected.keys()):
        check(got[name] == expected[name], f"{what}: {name} differs")


def cmake_install(source, build, prefix, definitions):
    quiet = {"stdout": subprocess.DEVNULL}
    subprocess.run(["cmake", "-S", source, "-B", build, "-G", "Ninja"] +
                   [f"-D{k}={v}" for k, v in definitions.items()], check=True, **quiet)
    subprocess.run(["cmake", "--build", build], check=True, **quiet)
    subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True, **quiet)
    return tree(prefix)


def source_files():
    """The source tree as a release archive holds it: files Git tracks or would track."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def header_version():
    text = (ROOT / "include/bifrost/version.hpp").read_text()
    return ".".join(re.search(rf"#define BIFROST_VERSION_{p} (\d+)", text).group(1)
                    for p in ("MAJOR", "MINOR", "PATCH"))


def check_conan(reference, work):
    recipe = (ROOT / "conanfile.py").read_text()
    exports = re.findall(r'"([^"]+)"', re.search(r"exports_sources\s*=\s*(.+)", recipe).group(1))
    variables = {k: {"True": "ON", "False": "OFF"}.get(v, v.strip('"')) for k, v in
                 re.findall(r'cache_variables\["(\w+)"\]\s*=\s*(True|False|"[^"]*")', recipe)}
    resdir = re.search(r'cpp\.package\.resdirs\s*=\s*\["([^"]+)"\]', recipe)
    # What Conan's CMakeToolchain sets for `cmake --install` into the package folder.
    variables.update(CMAKE_INSTALL_BINDIR="bin", CMAKE_INSTALL_LIBDIR="lib",
                     CMAKE_INSTALL_INCLUDEDIR="include",
                     CMAKE_INSTALL_DATAROOTDIR=resdir.group(1) if resdir else "res")

    src = work / "conan-src"
    for f in source_files():
        if any(fnmatch.fnmatch(f, pattern) for pattern in exports):
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    got = cmake_install(src, work / "conan-build", work / "conan-package", variables)

    expected = dict(reference)
    check(re.search(r'copy\(self, "LICENSE", [^)]*"licenses"\)', recipe) is not None,
          "conanfile.py: package() does not copy LICENSE to licenses/")
    expected["licenses/LICENSE"] = (ROOT / "LICENSE").read_bytes()
    got["licenses/LICENSE"] = (ROOT / "LICENSE").read_bytes()
    compare("conan package", got, expected)

    check('set_property("cmake_file_name", "bifrost")' in recipe, "conanfile.py: cmake_file_name")
    check('set_property("cmake_target_name", "bifrost::bifrost")' in recipe,
          "conanfile.py: cmake_target_name")
    tp = re.search(r'test_package_folder\s*=\s*"([^"]+)"', recipe)
    check(tp is not None and (ROOT / tp.group(1) / "conanfile.py").is_file() and
          (ROOT / tp.group(1) / "CMakeLists.txt").is_file(),
          "conanfile.py: test_package_folder has no conanfile.py and CMakeLists.txt")
    return sorted(got)


def check_vcpkg(reference, work):
    port = ROOT / "ports/bifrost"
    portfile = (port / "portfile.cmake").read_text()
    options = dict(re.findall(r"-D(\w+)=(\S+)", portfile))
    config_path = re.search(r"vcpkg_cmake_config_fixup\(CONFIG_PATH\s+([^\s)]+)", portfile).group(1)
    got = cmake_install(ROOT, work / "vcpkg-build", work / "vcpkg-package", options)
    compare("vcpkg install (before the fixup)", got, reference)

    check(f"{config_path}/bifrostConfig.cmake" in got,
          f"portfile.cmake: CONFIG_PATH {config_path} holds no bifrostConfig.cmake")
    final = sorted({f"share/bifrost/{n[len(config_path) + 1:]}" if n.startswith(config_path + "/")
                    else n for n in got} | {"share/bifrost/copyright", "share/bifrost/usage"})
    check('"${CMAKE_CURRENT_LIST_DIR}/usage"' in portfile and (port / "usage").is_file(),
          "portfile.cmake: usage is not installed")
    check("vcpkg_install_copyright" in portfile, "portfile.cmake: no copyright")
    usage = (port / "usage").read_text()
    check("find_package(bifrost CONFIG REQUIRED)" in usage and "bifrost::bifrost" in usage,
          "ports/bifrost/usage: wrong package or target name")

    manifest = json.loads((port / "vcpkg.json").read_text())
    check(manifest["version"] == header_version(),
          f"vcpkg.json: version {manifest['version']} != version.hpp {header_version()}")
    deps = {d if isinstance(d, str) else d["name"] for d in manifest["dependencies"]}
    used = set()
    for header in (ROOT / "include").rglob("*.hpp"):
        used |= set(re.findall(r"#\s*include\s*<boost/(\w+)[/.]", header.read_text()))
    for lib in sorted(used):
        check(f"boost-{lib}" in deps, f"vcpkg.json: the headers use Boost.{lib}, no boost-{lib}")
    return final


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path,
                        help="prefix of a plain `cmake --install`")
    parser.add_argument("--work", required=True, type=Path, help="scratch directory")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    reference = tree(args.reference)
    check("share/bifrost/cmake/bifrostConfig.cmake" in reference,
          "reference: no share/bifrost/cmake/bifrostConfig.cmake")
    targets = reference.get("share/bifrost/cmake/bifrostTargets.cmake", b"").decode()
    check("add_library(bifrost::bifrost INTERFACE IMPORTED)" in targets,
          "reference: bifrostTargets.cmake defines no bifrost::bifrost")

    # When the target links OpenSSL, both package managers must provide it too.
    if re.search(r"set\(BIFROST_NEEDS_OPENSSL ON\)", (ROOT / "CMakeLists.txt").read_text()):
        check("openssl/" in (ROOT / "conanfile.py").read_text(),
              "conanfile.py: bifrost::bifrost links OpenSSL, the recipe does not require it")
        check('"openssl"' in (ROOT / "ports/bifrost/vcpkg.json").read_text(),
              "vcpkg.json: bifrost::bifrost links OpenSSL, the port does not depend on it")

    conan = check_conan(reference, args.work)
    vcpkg = check_vcpkg(reference, args.work)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    print(f"cmake --install: {len(reference)} files; the Conan package: the same + "
          f"licenses/LICENSE ({len(conan)}); the vcpkg package: the same with "
          f"share/bifrost/cmake/* in share/bifrost/, + copyright, usage ({len(vcpkg)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
