"""Build: cythonize every ext/_<name>.pyx into the extension module engine._<name>.

A module's root file includes the files of its layers from ext/'s sub-folders
(base/, json/, http/, oip/, core/, backends/, front/, gjson/). Its declarations live
at ext/engine/<module>.pxd, which includes the .pxd beside each file, so Cython
finds them by full dotted name with include_path=["ext"].  ENGINE_DEBUG=1 builds with
annotate, line tracing and the invariant checks that release builds compile out.
The gRPC modules engine/protos/grpc_predict_v2_pb2*.py are generated here from
protos/grpc_predict_v2.proto with grpcio-tools (a build requirement), never committed.
"""
import os
import shutil
import subprocess
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("ENGINE_DEBUG", "") not in ("", "0")


MODE_FILE = HERE / "ext" / ".build-mode"


def drop_stale_c(pyx: Path, mode_changed: bool) -> None:
    """Cython's own dependency check misses the .pxd files found through include_path
    and the files a module includes, and a switch between debug and release builds:
    remove a generated .c older than any of its sources or built in the other mode."""
    c_file = pyx.with_suffix(".c")
    if not c_file.exists():
        return
    if mode_changed:
        c_file.unlink()
        return
    ext = HERE / "ext"
    sources = [pyx, *(p for p in ext.rglob("*.pyx") if p.parent != ext),
               *ext.rglob("*.pxi"), *ext.rglob("*.pxd")]
    if max(p.stat().st_mtime for p in sources) > c_file.stat().st_mtime:
        c_file.unlink()


def _gencode_too_new(pb2: Path) -> bool:
    import re
    m = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),",
                  pb2.read_text())
    if m is None:
        return False
    try:
        from google.protobuf import __version__ as runtime
    except ImportError:
        return False
    return tuple(map(int, m.groups())) > tuple(int(x) for x in runtime.split(".")[:2])


def generate_protos():
    """Run protoc when the .proto is newer than its generated modules, or when they
    were generated for a newer protobuf runtime than the installed one (an install
    can downgrade protobuf after the first build: kserve pins protobuf<7)."""
    proto = HERE / "protos" / "grpc_predict_v2.proto"
    outputs = [HERE / "engine" / "protos" / f"grpc_predict_v2_pb2{s}.py" for s in ("", "_grpc")]
    if all(o.exists() and o.stat().st_mtime >= proto.stat().st_mtime for o in outputs) \
            and not _gencode_too_new(outputs[0]):
        return
    from grpc_tools import protoc

    # The virtual include path names the file engine/protos/..., so the generated
    # _pb2_grpc module imports its _pb2 sibling by its package path.
    args = ["protoc", f"-Iengine/protos={proto.parent}", f"--python_out={HERE}",
            f"--grpc_python_out={HERE}", "engine/protos/grpc_predict_v2.proto"]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {proto}")


def nghttp2_flags() -> tuple[list, list, list]:
    """Compile and link flags of libnghttp2 (engine._core's HTTP/2 layer, ext/h2/):
    pkg-config's, else -lnghttp2 when the header is where the compiler looks. Fails
    with how to get it: scripts/system-deps.sh installs Debian's libnghttp2-dev."""
    if shutil.which("pkg-config"):
        try:
            out = subprocess.run(["pkg-config", "--cflags", "--libs", "libnghttp2"],
                                 check=True, capture_output=True, text=True).stdout.split()
        except subprocess.CalledProcessError:
            out = None
        if out is not None:
            dirs = [f[2:] for f in out if f.startswith("-I")]
            lib_dirs = [f[2:] for f in out if f.startswith("-L")]
            libs = [f[2:] for f in out if f.startswith("-l")] or ["nghttp2"]
            return dirs, lib_dirs, libs
    for include in ("/usr/include", "/usr/local/include"):
        if (Path(include) / "nghttp2" / "nghttp2.h").exists():
            return [], [], ["nghttp2"]
    raise SystemExit(
        "engine._core needs libnghttp2 (the HTTP/2 library of the gRPC front end) and "
        "its header nghttp2/nghttp2.h: install Debian's libnghttp2-dev "
        "(sh scripts/system-deps.sh, or apt-get install libnghttp2-dev), or point "
        "PKG_CONFIG_PATH at a libnghttp2.pc")


def extensions():
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    cflags = ["-O3", "-fno-strict-aliasing"]
    if DEBUG:
        macros += [("CYTHON_TRACE_NOGIL", "1"), ("ENGINE_DEBUG", "1")]
        cflags = ["-O0", "-g3"]
    mode = "debug" if DEBUG else "release"
    mode_changed = not MODE_FILE.exists() or MODE_FILE.read_text() != mode
    modules = []
    for pyx in sorted((HERE / "ext").glob("_*.pyx")):
        drop_stale_c(pyx, mode_changed)
        # only engine._core speaks HTTP/2
        dirs, lib_dirs, libs = nghttp2_flags() if pyx.stem == "_core" else ([], [], [])
        modules.append(Extension(
            f"engine.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            define_macros=macros,
            extra_compile_args=cflags,
            include_dirs=dirs,
            library_dirs=lib_dirs,
            libraries=libs,
        ))
    MODE_FILE.write_text(mode)
    return cythonize(
        modules,
        include_path=["ext"],
        language_level=3,
        annotate=DEBUG,
        force=DEBUG,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "linetrace": DEBUG,
            "profile": DEBUG,
            "embedsignature": True,
        },
    )


generate_protos()
setup(ext_modules=extensions())
