"""Small fake services for the front-end unit tests (CLI and client), plus a check of the fakes.

The fakes follow CONTRACTS.md's service signatures and return Engine-API-shaped dicts;
they keep everything in memory.  A container's "command" is a tiny script language:
``echo WORDS`` prints, ``fail N`` prints to stderr and exits N, ``missing`` fails to exec
(127), ``sleep`` keeps running until stopped/killed.
"""
from __future__ import annotations

import collections
import io
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from nbcontainer.errors import Conflict, ContainerNotFound, ExecFailure, ImageNotFound, VolumeNotFound
from nbcontainer.events import Progress, emit

IMAGE_ID = "sha256:" + "ab" * 32


class FakeImageService:
    def __init__(self) -> None:
        self.images: Dict[str, Dict[str, Any]] = {
            IMAGE_ID: {"Id": IMAGE_ID, "RepoTags": ["busybox:latest"], "RepoDigests": [], "Created": 1_700_000_000,
                       "Size": 1_234_567, "SharedSize": -1, "Containers": 0, "Labels": {"a": "b"},
                       "Config": {"Cmd": ["sh"], "Labels": {"a": "b"}}}}
        self.calls: List[tuple] = []

    def resolve(self, ref: str) -> str:
        for iid, img in self.images.items():
            if ref in (iid, iid[7:]) or iid[7:].startswith(ref) or ref in img["RepoTags"] \
                    or f"{ref}:latest" in img["RepoTags"]:
                return iid
        raise ImageNotFound(f"No such image: {ref}")

    def list(self, all: bool = False, filters: Optional[dict] = None) -> List[Dict[str, Any]]:
        self.calls.append(("list", all, filters))
        return [dict(i) for i in self.images.values()]

    def inspect(self, ref: str) -> Dict[str, Any]:
        img = self.images[self.resolve(ref)]
        return {**img, "Architecture": "amd64", "Os": "linux", "RootFS": {"Type": "layers", "Layers": []}}

    def history(self, ref: str) -> List[Dict[str, Any]]:
        iid = self.resolve(ref)
        return [{"Id": iid, "Created": 1_700_000_000, "CreatedBy": "nbc import " + "x" * 60, "Tags": [],
                 "Size": 1_234_567, "Comment": "imported"}]

    def tag(self, ref: str, target: str) -> None:
        self.images[self.resolve(ref)]["RepoTags"].append(target if ":" in target else target + ":latest")

    def remove(self, ref: str, force: bool = False, noprune: bool = False) -> List[Dict[str, str]]:
        iid = self.resolve(ref)
        tags = self.images.pop(iid)["RepoTags"]
        return [{"Untagged": t} for t in tags] + [{"Deleted": iid}]

    def import_(self, source: Any, reference: Optional[str] = None, changes: Any = (), message: Any = None,
                progress: Any = None) -> str:
        data = source.read() if hasattr(source, "read") else Path(source).read_bytes()
        emit(Progress("import", "layer", "Extracting", len(data), len(data)), progress)
        iid = "sha256:" + "cd" * 32
        self.images[iid] = {"Id": iid, "RepoTags": [reference] if reference else [], "RepoDigests": [],
                            "Created": 1_700_000_100, "Size": len(data), "SharedSize": -1, "Containers": 0,
                            "Config": {"Labels": None}}
        self.calls.append(("import_", reference, tuple(changes), message))
        return iid

    def bootstrap(self, suite: str = "bookworm", include: Any = (), variant: str = "minbase", tag: Any = None,
                  progress: Any = None) -> str:
        self.calls.append(("bootstrap", suite, tuple(include), variant, tag))
        return IMAGE_ID

    def prune(self, all: bool = False, filters: Any = None) -> Dict[str, Any]:
        self.calls.append(("prune", all))
        return {"ImagesDeleted": [{"Deleted": "sha256:" + "ee" * 32}], "SpaceReclaimed": 2_000_000}

    def df(self) -> Dict[str, Any]:
        return {"LayersSize": 1_234_567, "Images": self.list(all=True)}


class FakeConn:
    def __init__(self, rec: Dict[str, Any]):
        self.rec = rec
        self.stdin = bytearray()
        self.stdin_closed = False
        self.resized: List[tuple] = []
        self.closed = False

    def read(self) -> Optional[tuple]:
        if self.rec["pending"]:
            return self.rec["pending"].popleft()
        return None

    def write_stdin(self, data: bytes) -> None:
        self.stdin += data

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def resize(self, rows: int, cols: int) -> None:
        self.resized.append((rows, cols))

    def close(self) -> None:
        self.closed = True


class FakeContainerService:
    def __init__(self, images: FakeImageService):
        self.images = images
        self.containers: Dict[str, Dict[str, Any]] = {}
        self.calls: List[tuple] = []
        self._n = 0

    def resolve(self, name: str) -> str:
        for cid, rec in self.containers.items():
            if name in (cid, rec["name"]) or cid.startswith(name):
                return cid
        raise ContainerNotFound(f"No such container: {name}")

    def create(self, image: str, command: Any = None, options: Any = None) -> str:
        image_id = self.images.resolve(image)
        name = getattr(options, "name", None)
        if name and any(r["name"] == name for r in self.containers.values()):
            raise Conflict(f'The container name "/{name}" is already in use')
        self._n += 1
        cid = f"{self._n:x}f" + "0" * 62
        self.containers[cid] = {"id": cid, "name": name or f"fake_{self._n}", "image": image, "image_id": image_id,
                                "command": list(command or ["sh"]), "options": options, "state": "created",
                                "exit": 0, "log": [], "pending": collections.deque(), "created": 1_700_000_000 + self._n}
        self.calls.append(("create", image, command, options))
        return cid

    def start(self, name: str) -> None:
        rec = self.containers[self.resolve(name)]
        cmd = rec["command"]
        self.calls.append(("start", rec["id"]))
        if cmd[0] == "missing":
            raise ExecFailure(f"exec: \"{cmd[0]}\": executable file not found in $PATH", 127)
        if cmd[0] == "sleep":
            rec["state"] = "running"
            return
        if cmd[0] == "echo":
            out = [("stdout", (" ".join(cmd[1:]) + "\n").encode())]
        elif cmd[0] == "fail":
            out = [("stdout", b"partial\n"), ("stderr", b"boom\n")]
            rec["exit"] = int(cmd[1])
        else:
            out = []
        rec["log"] += out
        rec["pending"].extend(out)
        rec["state"] = "exited"

    def stop(self, name: str, timeout: Optional[int] = None) -> None:
        rec = self.containers[self.resolve(name)]
        self.calls.append(("stop", rec["id"], timeout))
        rec["state"], rec["exit"] = "exited", 137

    def restart(self, name: str, timeout: Optional[int] = None) -> None:
        self.stop(name, timeout)
        self.containers[self.resolve(name)]["state"] = "running"

    def kill(self, name: str, signal: Any = "KILL") -> None:
        rec = self.containers[self.resolve(name)]
        self.calls.append(("kill", rec["id"], signal))
        if rec["state"] != "running":
            raise Conflict(f"Container {rec['id']} is not running")
        rec["state"], rec["exit"] = "exited", 137

    def wait(self, name: str, condition: str = "not-running", timeout: Any = None) -> Dict[str, Any]:
        return {"StatusCode": self.containers[self.resolve(name)]["exit"], "Error": None}

    def remove(self, name: str, force: bool = False, volumes: bool = False) -> None:
        cid = self.resolve(name)
        if self.containers[cid]["state"] == "running" and not force:
            raise Conflict(f"You cannot remove a running container {cid}. Stop the container before attempting "
                           "removal or force remove")
        self.calls.append(("remove", cid, force, volumes))
        del self.containers[cid]

    def inspect(self, name: str) -> Dict[str, Any]:
        rec = self.containers[self.resolve(name)]
        opts = rec["options"]
        return {"Id": rec["id"], "Name": "/" + rec["name"], "Image": rec["image_id"], "Created": "2023-11-14T22:13:20Z",
                "State": {"Status": rec["state"], "Running": rec["state"] == "running", "ExitCode": rec["exit"]},
                "Config": {"Image": rec["image"], "Cmd": rec["command"], "Labels": {"x": "y"},
                           "Tty": bool(getattr(opts, "tty", False)), "OpenStdin": bool(getattr(opts, "stdin_open", False))},
                "NetworkSettings": {"Ports": {}}}

    def list(self, all: bool = False, filters: Any = None) -> List[Dict[str, Any]]:
        self.calls.append(("list", all, filters))
        out = []
        for rec in self.containers.values():
            if not all and rec["state"] != "running":
                continue
            status = "Up 5 seconds" if rec["state"] == "running" else (
                "Created" if rec["state"] == "created" else f"Exited ({rec['exit']}) 3 seconds ago")
            out.append({"Id": rec["id"], "Names": ["/" + rec["name"]], "Image": rec["image"], "ImageID": rec["image_id"],
                        "Command": " ".join(rec["command"]), "Created": rec["created"], "State": rec["state"],
                        "Status": status, "Ports": [], "Labels": {"x": "y"}, "Mounts": []})
        return out

    def logs(self, name: str, stdout: bool = True, stderr: bool = True, follow: bool = False, tail: Any = "all",
             since: Any = None, until: Any = None, timestamps: bool = False):
        rec = self.containers[self.resolve(name)]
        self.calls.append(("logs", follow, tail, since, until, timestamps))
        lines = [(s, d) for s, d in rec["log"] if (s == "stdout" and stdout) or (s == "stderr" and stderr)]
        if tail != "all":
            lines = lines[-int(tail):] if int(tail) else []
        return iter(lines)

    def attach(self, name: str, stdin: bool = False) -> FakeConn:
        conn = FakeConn(self.containers[self.resolve(name)])
        self.last_conn = conn
        return conn

    def exec(self, name: str, cmd: Any, *, user=None, workdir=None, env=(), tty=False, stdin=False, detach=False,
             privileged=False, stdio=None):
        from nbcontainer.containers import ExecResult
        rec = self.containers[self.resolve(name)]
        self.calls.append(("exec", list(cmd), user, workdir, tuple(env), tty, stdin, detach, privileged, stdio))
        if rec["state"] != "running":
            raise Conflict(f"Container {rec['id']} is not running")
        return ExecResult(0 if cmd[0] != "false" else 1, b"exec-out\n", b"exec-err\n")

    def prune(self, filters: Any = None) -> Dict[str, Any]:
        gone = [cid for cid, r in self.containers.items() if r["state"] != "running"]
        for cid in gone:
            del self.containers[cid]
        return {"ContainersDeleted": gone, "SpaceReclaimed": 0}

    def df(self) -> List[Dict[str, Any]]:
        return [dict(s, SizeRw=10) for s in self.list(all=True)]


class FakeVolumeService:
    def __init__(self) -> None:
        self.volumes: Dict[str, Dict[str, Any]] = {}

    def create(self, name=None, driver="local", labels=None, driver_opts=None) -> Dict[str, Any]:
        name = name or "anon" + str(len(self.volumes))
        self.volumes[name] = {"Name": name, "Driver": driver, "Mountpoint": f"/v/{name}", "Labels": labels or {},
                              "Options": driver_opts or {}, "Scope": "local"}
        return self.volumes[name]

    def inspect(self, name: str) -> Dict[str, Any]:
        if name not in self.volumes:
            raise VolumeNotFound(f"get {name}: no such volume")
        return self.volumes[name]

    def list(self, filters=None) -> List[Dict[str, Any]]:
        return list(self.volumes.values())

    def remove(self, name: str, force: bool = False) -> None:
        self.inspect(name)
        del self.volumes[name]

    def prune(self, filters=None) -> Dict[str, Any]:
        self.last_prune_filters = filters
        gone = list(self.volumes)
        self.volumes.clear()
        return {"VolumesDeleted": gone, "SpaceReclaimed": 0}


class FakeNetworks:
    """The part of NetworkManager that `system prune` uses."""

    def __init__(self) -> None:
        self.networks = ["unused-net"]

    def prune(self, filters: Any = None) -> Dict[str, Any]:
        gone, self.networks = self.networks, []
        return {"NetworksDeleted": gone}


class FakeBuildService:
    def __init__(self) -> None:
        self.pruned = 0

    def prune(self, all: bool = True) -> Dict[str, Any]:
        self.pruned += 1
        return {"CachesDeleted": ["cache-key-1"], "SpaceReclaimed": 1000}


def make_client() -> Any:
    from nbcontainer.client import NbClient
    images = FakeImageService()
    containers = FakeContainerService(images)
    containers.network = FakeNetworks()
    volumes = FakeVolumeService()
    return NbClient(services={"image_service": images, "container_service": containers, "volume_service": volumes,
                              "build_service": FakeBuildService(), "runtime": None})


class Captured:
    """stdout/stderr that look like sys.stdout (with a .buffer) and remember what was written."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self._text = io.TextIOWrapper(self.buffer, encoding="utf-8", write_through=True)

    def write(self, s: str) -> int:
        return self._text.write(s)

    def flush(self) -> None:
        self._text.flush()

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        self._text.flush()
        return self.buffer.getvalue().decode()


def run_nbc(client: Any, *argv: str, stdin: bytes = b"") -> tuple:
    """Run ``nbc argv`` against ``client``; returns (exit status, stdout, stderr)."""
    from nbcontainer.cli.main import main
    out, err = Captured(), Captured()
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin))
    code = main(list(argv), client=client, stdout=out, stderr=err, stdin=stdin_stream)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fake_client():
    return make_client()


def test_fake_container_script_language():
    client = make_client()
    svc = client.container_service
    cid = svc.create("busybox", ["fail", "3"])
    svc.start(cid)
    assert svc.wait(cid)["StatusCode"] == 3
    assert [s for s, _ in svc.logs(cid)] == ["stdout", "stderr"]
    with pytest.raises(ExecFailure):
        svc.start(svc.create("busybox", ["missing"]))

