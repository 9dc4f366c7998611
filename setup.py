"""Build: cythonize every ext/_<name>.pyx into the extension module engine._<name>.

Declarations shared between modules live at ext/engine/<module>.pxd, so Cython finds
them by full dotted name with include_path=["ext"].  ENGINE_DEBUG=1 builds with
annotate, line tracing and the invariant checks that release builds compile out.
"""
import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("ENGINE_DEBUG", "") not in ("", "0")


def drop_stale_c(pyx: Path) -> None:
    """Cython's own dependency check misses the .pxd files found through include_path
    and the files a module includes: remove a generated .c older than any of them."""
    c_file = pyx.with_suffix(".c")
    if not c_file.exists():
        return
    sources = [pyx, *(HERE / "ext").glob("[!_]*.pyx"), *(HERE / "ext").glob("*.pxi"),
               *(HERE / "ext" / "engine").glob("*.pxd")]
    if max(p.stat().st_mtime for p in sources) > c_file.stat().st_mtime:
        c_file.unlink()


def extensions():
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    cflags = ["-O3", "-fno-strict-aliasing"]
    if DEBUG:
        macros += [("CYTHON_TRACE_NOGIL", "1"), ("ENGINE_DEBUG", "1")]
        cflags = ["-O0", "-g3"]
    modules = []
    for pyx in sorted((HERE / "ext").glob("_*.pyx")):
        drop_stale_c(pyx)
        modules.append(Extension(
            f"engine.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            define_macros=macros,
            extra_compile_args=cflags,
        ))
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


setup(ext_modules=extensions())
