"""Files engine: globs, faithful round trip, and hostile archives."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from backups.engines.base import EngineError, copy_into
from backups.engines.bundle import bundle_restore
from backups.engines.files import iter_tree, tar_header, tar_restore_sink, tar_source

from .helpers import transfer


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "app" / "static").mkdir(parents=True)
    (src / "logs").mkdir()
    (src / "empty").mkdir()
    (src / "app" / "main.py").write_text("print('hi')\n")
    (src / "app" / "static" / "logo.bin").write_bytes(bytes(range(256)) * 64)
    (src / "app" / "secret.key").write_text("k")
    (src / "logs" / "a.log").write_text("log\n")
    (src / "app" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "app" / "run.sh", 0o750)
    os.chmod(src / "app" / "secret.key", 0o600)
    os.chmod(src / "app" / "main.py", 0o664)
    os.symlink("main.py", src / "app" / "current.py")
    os.link(src / "app" / "main.py", src / "app" / "main-hardlink.py")
    return src


def test_round_trip_reproduces_files_modes_links_and_contents(tree, tmp_path):
    out = tmp_path / "out"
    result = transfer(tar_source([tree], root=tree.parent), tar_restore_sink(out))
    assert result["files"] >= 6
    assert list(iter_tree(out / "src")) == list(iter_tree(tree))
    assert os.stat(out / "src/app/main.py").st_ino == os.stat(out / "src/app/main-hardlink.py").st_ino


def test_members_are_relative_to_root_by_default(tree, tmp_path):
    source = tar_source([tree / "app" / "main.py"])
    data = b"".join(iter(lambda: source.read(65536), b""))
    source.finish()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert str(tree / "app" / "main.py").lstrip("/") in names
    assert not [n for n in names if n.startswith("/")]


def test_include_and_exclude_globs(tree, tmp_path):
    out = tmp_path / "out"
    transfer(
        tar_source([tree], include=["*.py", "app/static/*"], exclude=["*hardlink*"], root=tree),
        tar_restore_sink(out),
    )
    files = sorted(rel for rel, kind, _, _ in iter_tree(out) if kind != "dir")
    assert files == ["app/current.py", "app/main.py", "app/static/logo.bin"]
    assert not (out / "empty").exists() and not (out / "logs").exists()

    out2 = tmp_path / "out2"
    transfer(tar_source([tree], exclude=["logs", "*.key"], root=tree), tar_restore_sink(out2))
    names = {rel for rel, _, _, _ in iter_tree(out2)}
    assert "logs" not in names and "app/secret.key" not in names
    assert {"empty", "app/run.sh", "app/static/logo.bin"} <= names


def test_create_new_refuses_a_non_empty_target_and_overwrite_replaces(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    with pytest.raises(EngineError, match="not empty"):
        tar_restore_sink(out)
    (out / "app").mkdir()
    (out / "app" / "main.py").write_text("old")
    transfer(tar_source([tree / "app"], root=tree), tar_restore_sink(out, strategy="overwrite"))
    assert (out / "app" / "main.py").read_text() == "print('hi')\n"
    assert (out / "keep.txt").read_text() == "keep"


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], fine: str = "fine.txt") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ok = tarfile.TarInfo(fine)
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


MALICIOUS = {
    "absolute": [(_member("/tmp/OUTSIDE/abs.txt"), b"x")],
    "dotdot": [(_member("../OUTSIDE/escape.txt"), b"x")],
    "nested dotdot": [(_member("a/../../OUTSIDE/escape.txt"), b"x")],
    "symlink to /etc": [
        (_member("etc", tarfile.SYMTYPE, "/etc"), None),
        (_member("etc/evil"), b"x"),
    ],
    "relative symlink out": [
        (_member("up", tarfile.SYMTYPE, "../OUTSIDE"), None),
        (_member("up/evil.txt"), b"x"),
    ],
    "hardlink outside": [(_member("hl", tarfile.LNKTYPE, "../OUTSIDE/victim.txt"), None)],
    "hardlink absolute": [(_member("hl", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "device": [(_member("dev", tarfile.CHRTYPE), None)],
    "fifo": [(_member("fifo", tarfile.FIFOTYPE), None)],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_rejected(case, tmp_path):
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    (outside / "victim.txt").write_text("victim")
    target = tmp_path / "target"
    data = _tar(*MALICIOUS[case])
    if case == "absolute":  # an absolute name pointing into our OUTSIDE directory
        data = _tar((_member(str(outside / "abs.txt")), b"x"))
    sink = tar_restore_sink(target)
    with pytest.raises(EngineError, match="Unsafe archive member") as info, sink:
        copy_into(data, sink)
        sink.finish()
    assert info.value.code == "unsafe_archive"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "victim"
    assert not target.exists()  # create_new: the directory we created is removed again


def test_existing_symlink_in_target_is_not_followed(tmp_path):
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "data")
    sink = tar_restore_sink(target, strategy="overwrite")
    with pytest.raises(EngineError, match="outside the target"):
        copy_into(_tar((_member("data/evil.txt"), b"x")), sink)
        sink.finish()
    assert list(outside.iterdir()) == []
    # A file name that is an existing symlink is replaced, not written through.
    os.symlink(outside / "victim.txt", target / "file.txt")
    transfer_data = _tar((_member("file.txt"), b"new"))
    sink = tar_restore_sink(target, strategy="overwrite")
    copy_into(transfer_data, sink)
    sink.finish()
    assert not (outside / "victim.txt").exists()
    assert (target / "file.txt").read_bytes() == b"new" and not (target / "file.txt").is_symlink()


def test_kill_stops_the_stream_and_an_unread_tar_is_incomplete(tree):
    source = tar_source([tree])
    assert source.read(100)
    source.kill()
    assert source.read(100) == b""
    unread = tar_source([tree])
    assert unread.read(100)
    with pytest.raises(EngineError, match="not read to its end"):
        unread.finish()


def test_a_file_that_shrinks_while_it_is_read_fails_the_stream(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    big = folder / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    source = tar_source([folder], root=folder)
    first = source.read(1 << 20)  # the header and the first piece of the file
    assert first
    big.write_bytes(b"short now")
    while source.read(1 << 20):
        pass
    with pytest.raises(EngineError, match="file shrank while it was read") as info:
        source.finish()
    assert info.value.code == "dump_failed"


# --------------------------------------------------------------------------- relative restores


def test_a_folder_backup_restores_its_contents_straight_into_the_target(tree, tmp_path):
    """A tar of /…/src (members named …/src/… below "/") restores as target/…, not
    target/…/src/…, with modes, symlinks and hard links intact."""
    out = tmp_path / "restore" / "x"
    result = transfer(tar_source([tree]), tar_restore_sink(out, source=tree))
    assert list(iter_tree(out)) == list(iter_tree(tree))
    assert os.stat(out / "app/main.py").st_ino == os.stat(out / "app/main-hardlink.py").st_ino
    assert result["files"] >= 6 and not (out / str(tree).lstrip("/")).exists()


def test_a_single_file_backup_restores_under_its_own_name(tree, tmp_path):
    out = tmp_path / "out"
    transfer(tar_source([tree / "app" / "run.sh"]), tar_restore_sink(out, source=tree / "app" / "run.sh"))
    assert [(rel, kind, mode) for rel, kind, mode, _ in iter_tree(out)] == [("run.sh", "file", 0o750)]


def test_chosen_files_and_folders_restore_alone(tree, tmp_path):
    out = tmp_path / "out"
    result = transfer(
        tar_source([tree]), tar_restore_sink(out, source=tree, only=["app/static", "logs/*.log", "./app/run.sh"])
    )
    files = sorted(rel for rel, kind, _, _ in iter_tree(out) if kind != "dir")
    assert files == ["app/run.sh", "app/static/logo.bin", "logs/a.log"]
    assert (out / "app/static/logo.bin").read_bytes() == (tree / "app/static/logo.bin").read_bytes()
    assert os.stat(out / "app/run.sh").st_mode & 0o777 == 0o750
    assert result["files"] == 3


def test_a_hard_link_chosen_without_its_file_is_named_and_with_it_restores(tree, tmp_path):
    archive = io.BytesIO()
    with tar_source([tree]) as source:
        while chunk := source.read(1 << 20):
            archive.write(chunk)
    archive.seek(0)
    with tarfile.open(fileobj=archive) as tar:  # which twin the archive holds as the link
        link = next(m for m in tar.getmembers() if m.islnk())
    name, target = (Path(n).relative_to(str(tree).lstrip("/")).as_posix() for n in (link.name, link.linkname))
    with pytest.raises(EngineError) as refused:
        transfer(tar_source([tree]), tar_restore_sink(tmp_path / "a", source=tree, only=[name]))
    assert refused.value.code == "paths_not_found"
    assert f"{name} (a hard link to {target}: choose it too)" in str(refused.value)
    assert not (tmp_path / "a").exists()
    out = tmp_path / "b"
    transfer(tar_source([tree]), tar_restore_sink(out, source=tree, only=[name, target]))
    assert os.stat(out / name).st_ino == os.stat(out / target).st_ino


def test_a_chosen_path_the_backup_does_not_have_fails_and_leaves_nothing(tree, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(EngineError) as refused:
        transfer(tar_source([tree]), tar_restore_sink(out, source=tree, only=["app/run.sh", "docs"]))
    assert refused.value.code == "paths_not_found"
    assert str(refused.value) == "Chosen files: not in the backed-up folder: docs"
    assert not out.exists()
    for bad in ("/etc/passwd", "../x", "app/../../x", "."):
        with pytest.raises(EngineError) as invalid:
            tar_restore_sink(tmp_path / "never", only=[bad])
        assert invalid.value.code == "invalid_params"


def test_include_patterns_restore_relative_to_the_folder(tree, tmp_path):
    out = tmp_path / "out"
    transfer(tar_source([tree], include=["*.py"]), tar_restore_sink(out, source=tree))
    files = sorted(rel for rel, kind, _, _ in iter_tree(out) if kind != "dir")
    assert files == ["app/current.py", "app/main-hardlink.py", "app/main.py"]


RELOCATED_ESCAPES = {
    "dotdot below the folder": [(_member("srv/data/../../OUTSIDE/x.txt"), b"x")],
    "absolute": [(_member("/srv/data/x.txt"), b"x")],
    "outside the folder": [(_member("srv/other/x.txt"), b"x")],
    # Inside the target with the old nested layout (target/srv/data/up -> target/OUTSIDE),
    # outside once the folder's contents sit at the target's top.
    "symlink out after relocation": [
        (_member("srv/data/up", tarfile.SYMTYPE, "../../OUTSIDE"), None),
        (_member("srv/data/up/evil.txt"), b"x"),
    ],
    "hardlink to outside the folder": [(_member("srv/data/hl", tarfile.LNKTYPE, "srv/secret"), None)],
}


RELOCATED_REASONS = {
    "dotdot below the folder": "contains '..'",
    "absolute": "is an absolute path",
    "outside the folder": "outside the backed-up path",
    "symlink out after relocation": "points outside the target",
    "hardlink to outside the folder": "hard link 'srv/data/hl' points outside the backed-up path",
}


@pytest.mark.parametrize("case", sorted(RELOCATED_ESCAPES))
def test_relative_restore_still_refuses_anything_that_escapes(case, tmp_path):
    target = tmp_path / "target"
    (tmp_path / "OUTSIDE").mkdir()
    sink = tar_restore_sink(target, source="/srv/data")
    with pytest.raises(EngineError, match="Unsafe archive member") as info, sink:
        copy_into(_tar(*RELOCATED_ESCAPES[case], fine="srv/data/fine.txt"), sink)
        sink.finish()
    assert info.value.code == "unsafe_archive"
    assert RELOCATED_REASONS[case] in str(info.value)
    assert list((tmp_path / "OUTSIDE").iterdir()) == []
    assert not target.exists()


def test_an_application_artifact_made_before_relative_restores_still_restores(tmp_path):
    """data/application-bundle-absolute-names.tar was made by bundle_source + tar_source as
    application backups make them (members named by their absolute path below "/")."""
    data = (Path(__file__).parent / "data" / "application-bundle-absolute-names.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    infos = {m["name"]: m["info"] for m in manifest["members"]}
    handlers = {
        item["member"]: (
            lambda item=item: tar_restore_sink(
                tmp_path / item["name"],
                source=infos[item["member"]]["paths"][0],
                root=infos[item["member"]]["root"],
            )
        )
        for item in manifest["sources"]
    }
    result = bundle_restore(data, handlers)
    assert all(m["restored"] for m in result["members"].values())
    uploads = tmp_path / "uploads"
    assert sorted((rel, kind) for rel, kind, _, _ in iter_tree(uploads)) == [
        ("empty", "dir"),
        ("img", "dir"),
        ("img/a.png", "file"),
        ("latest.txt", "symlink"),
        ("readme-hardlink.txt", "file"),
        ("readme.txt", "file"),
    ]
    assert (uploads / "readme.txt").read_text() == "hello\n"
    assert os.readlink(uploads / "latest.txt") == "readme.txt"
    assert os.stat(uploads / "readme.txt").st_ino == os.stat(uploads / "readme-hardlink.txt").st_ino
    assert os.stat(uploads / "img/a.png").st_mode & 0o777 == 0o640
    assert [rel for rel, _, _, _ in iter_tree(tmp_path / "db")] == ["app.sqlite"]
    assert (tmp_path / "db" / "app.sqlite").read_bytes().startswith(b"SQLite format 3")


@pytest.mark.parametrize(
    "name, kind, link, size, mtime, uid",
    [
        ("srv/data/a.csv", tarfile.REGTYPE, "", 4000, 1_700_000_000, 1000),
        ("srv/data", tarfile.DIRTYPE, "", 0, 1_700_000_000, 0),
        ("srv/data/link", tarfile.SYMTYPE, "../b", 0, 1_700_000_000, 0),
        ("srv/data/hard", tarfile.LNKTYPE, "srv/data/a.csv", 0, 1_700_000_000, 0),
        ("x" * 100, tarfile.REGTYPE, "", 1, 0, 0),
        ("d" * 100, tarfile.DIRTYPE, "", 0, 1, 0),  # 101 with its slash: a PAX header
        ("caf\u00e9/na\u00efve.txt", tarfile.REGTYPE, "", 5, 1_700_000_000, 0),  # not ASCII: PAX
        ("big.bin", tarfile.REGTYPE, "", 9 << 30, 1_700_000_000, 0),  # over 8 GiB: PAX size
        ("ids", tarfile.REGTYPE, "", 3, 1_700_000_000, 3_000_000),  # a big uid: PAX
        ("fraction", tarfile.REGTYPE, "", 3, 1_700_000_000.5, 0),  # a float mtime: PAX
    ],
)
def test_tar_headers_are_what_tarfile_writes(name, kind, link, size, mtime, uid):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mtime, info.uid, info.gid = kind, link, size, mtime, uid, 50
    info.mode, info.uname, info.gname = 0o100644, "root", "staff"
    assert tar_header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
