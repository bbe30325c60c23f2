#!/usr/bin/env python3
"""Checks an OCI archive of the operator image, as scripts/image.sh writes it.

    scripts/check-image.py dist/vaultkeeper-0.1.0.oci.tar [--version 0.1.0]

Reads the archive's index, manifest, config and layers (no daemon, no registry) and fails,
naming what is wrong, unless the image is what the chart and deploy/ expect: entrypoint
the vaultkeeper binary, a numeric non-root user (runAsNonRoot needs one: the image has no
/etc/passwd), the OCI labels, no shell or other program besides the binary, the binary
statically linked (there is no libc to load), the CA bundle for object stores over HTTPS,
and a writable /tmp for a restore's spool. Prints the digest and a summary when it passes.
"""

import argparse
import io
import json
import struct
import sys
import tarfile

PT_INTERP = 3
BINARY = "usr/local/bin/vaultkeeper"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.source",
)


def blob(archive, digest):
    algorithm, hex_digest = digest.split(":", 1)
    return archive.extractfile(f"blobs/{algorithm}/{hex_digest}").read()


def has_interpreter(elf):
    """Whether an ELF executable asks for a dynamic loader (a PT_INTERP program header)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    endian = "<" if elf[5] == 1 else ">"
    (phoff,) = struct.unpack_from(endian + "Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", elf, 0x36)
    for index in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", elf, phoff + index * phentsize)
        if p_type == PT_INTERP:
            return True
    return False


def check(path, version):
    problems = []
    with tarfile.open(path) as archive:
        index = json.loads(archive.extractfile("index.json").read())
        manifest_digest = index["manifests"][0]["digest"]
        manifest = json.loads(blob(archive, manifest_digest))
        if manifest.get("mediaType") != "application/vnd.oci.image.manifest.v1+json":
            problems.append(f"manifest media type is {manifest.get('mediaType')!r}, not OCI")
        config = json.loads(blob(archive, manifest["config"]["digest"]))
        runtime = config.get("config", {})

        entrypoint = runtime.get("Entrypoint")
        if entrypoint != [f"/{BINARY}"]:
            problems.append(f"entrypoint is {entrypoint!r}, not [\"/{BINARY}\"]")
        user = runtime.get("User", "")
        uid = user.split(":", 1)[0]
        if not uid.isdigit() or int(uid) == 0:
            problems.append(f"user is {user!r}: it must be a numeric, non-root uid")
        labels = runtime.get("Labels") or {}
        for label in LABELS:
            if not labels.get(label):
                problems.append(f"label {label} is missing")
        if version and labels.get("org.opencontainers.image.version") != version:
            problems.append(
                f"label org.opencontainers.image.version is "
                f"{labels.get('org.opencontainers.image.version')!r}, not {version!r}"
            )
        if config.get("architecture") != "amd64" or config.get("os") != "linux":
            problems.append(f"platform is {config.get('os')}/{config.get('architecture')}")

        files, modes, binary = {}, {}, None
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(blob(archive, layer["digest"]))) as layer_tar:
                for member in layer_tar.getmembers():
                    name = member.name.lstrip("./")
                    files[name] = member
                    modes[name] = member.mode
                    if name == BINARY and member.isfile():
                        binary = layer_tar.extractfile(member).read()

    executables = sorted(
        name
        for name, member in files.items()
        if member.isfile() and member.mode & 0o111 and name != BINARY
    )
    if executables:
        problems.append(f"programs besides the operator: {', '.join(executables)}")
    for shell in ("bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"):
        if shell in files:
            problems.append(f"the image has a shell: /{shell}")
    if binary is None:
        problems.append(f"/{BINARY} is missing")
    else:
        try:
            if has_interpreter(binary):
                problems.append(f"/{BINARY} is dynamically linked; the image has no libc")
        except ValueError as error:
            problems.append(f"/{BINARY}: {error}")
    if CA_BUNDLE not in files:
        problems.append(f"/{CA_BUNDLE} is missing (object stores over HTTPS need it)")
    if "tmp" not in files or not files["tmp"].isdir() or modes["tmp"] & 0o1777 != 0o1777:
        problems.append("/tmp is missing or not world-writable with the sticky bit")

    if problems:
        for problem in problems:
            print(f"check-image: {path}: {problem}", file=sys.stderr)
        return 1
    size = len(binary) / (1024 * 1024)
    print(
        f"check-image: {path}: entrypoint /{BINARY} ({size:.1f} MiB, static), user {user}, "
        f"{len(files)} files, labels {', '.join(f'{k}={labels[k]}' for k in LABELS)}, "
        f"manifest {manifest_digest}"
    )
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive")
    parser.add_argument("--version", default="", help="the expected version label")
    args = parser.parse_args()
    try:
        return check(args.archive, args.version)
    except (OSError, KeyError, ValueError, tarfile.TarError, json.JSONDecodeError) as error:
        print(f"check-image: {args.archive}: not a readable OCI archive: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
