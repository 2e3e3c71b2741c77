"""Build the source archive that `spark-submit --py-files` ships to executors.

It holds the jobs/ and lens/ packages with their data files (lens models, saved queries), and conf/
(the example configs and log4j2.properties): code reads them through jobs.core.config.packaged_file, which
works inside the zip as well as in a checkout.
"""
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobs", "lens", "generator")
DATA = ("conf",)


def _members() -> list[Path]:
    files = [p for top in PACKAGES + DATA for p in sorted((ROOT / top).rglob("*")) if p.is_file()]
    return [p for p in files if "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _members():
            zf.write(path, path.relative_to(ROOT).as_posix())
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/c360.zip")))
