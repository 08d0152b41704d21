"""Dashboard and ContainerPanel models and actions against the fake services; thread-safe updates."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets", reason="ipywidgets is not installed (pip install nbcontainer[jupyter])")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_fakes import IMAGE_ID, make_client  # noqa: E402

from nbcontainer.events import Lifecycle, bus, emit  # noqa: E402
from nbcontainer.widgets import ContainerPanel, Dashboard, LogFollower  # noqa: E402


@pytest.fixture
def client():
    return make_client()


@pytest.fixture
def board(client):
    b = Dashboard(client=client, threaded=False, watch_exits=False, server=None)  # no Jupyter server: the copy-the-command path
    yield b
    b.close()


def _run(client, name, cmd=("sleep",)):
    return client.containers.run("busybox", list(cmd), detach=True, name=name)


def test_tables_show_images_and_containers(client):
    _run(client, "web")
    board = Dashboard(client=client, threaded=False, watch_exits=False)
    try:
        assert "busybox" in board.images_html.value and "latest" in board.images_html.value
        assert "web" in board.containers_html.value and "running" in board.containers_html.value
        assert board.container_pick.value == "web"
        assert board.image_pick.value == "busybox:latest"
        assert [board.tabs.get_title(i) for i in range(4)] == ["Containers", "Images", "Ports", "Logs"]
        assert repr(board) == "Dashboard(containers, images, ports, logs)"
    finally:
        board.close()


def test_container_actions(board, client):
    _run(client, "web")
    board.refresh()
    board._container_action("stop", "web")
    assert client.container_service.inspect("web")["State"]["Status"] == "exited"
    assert "stop web: done" in board.status.value
    assert "Exited" in board.containers_html.value
    board._container_action("restart", "web")
    assert client.container_service.inspect("web")["State"]["Status"] == "running"
    board._container_action("remove", "web")
    assert client.container_service.containers == {}
    assert "No containers" in board.containers_html.value
    assert board.container_pick.value is None


def test_action_on_a_vanished_container_shows_a_message(board, client):
    _run(client, "gone")
    board.refresh()
    client.container_service.remove("gone", force=True)  # removed behind the dashboard's back
    board._container_action("stop", "gone")
    assert "No such container: gone" in board.status.value and "removed meanwhile" in board.status.value
    assert "gone" not in board.containers_html.value  # and the list was refreshed


def test_image_actions(board, client, tmp_path, monkeypatch):
    board._image_action("run", "busybox:latest")
    assert "started" in board.status.value
    assert len(client.container_service.containers) == 1
    board._image_action("remove", "busybox:latest")
    assert IMAGE_ID not in client.image_service.images
    board._image_action("remove", "busybox:latest")
    assert "No such image" in board.status.value


def test_save_action_writes_through_a_temp_file(board, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import nbcontainer.images.archive_save as archive_save
    monkeypatch.setattr(archive_save, "save", lambda svc, refs, f, progress=None: f.write(b"tar"))
    board._image_action("save", "busybox:latest")
    assert (tmp_path / "busybox_latest.tar").read_bytes() == b"tar"
    assert "saved busybox:latest" in board.status.value

    def broken(svc, refs, f, progress=None):
        from nbcontainer.errors import StoreError
        f.write(b"partial")
        raise StoreError("disk on fire")

    monkeypatch.setattr(archive_save, "save", broken)
    board._image_action("save", "busybox:latest")
    assert "disk on fire" in board.status.value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busybox_latest.tar"]  # no temp file left


def test_terminal_shows_the_exec_command(board, client, monkeypatch):
    _run(client, "web")
    board.refresh()
    monkeypatch.setenv("NBCONTAINER_ROOT", "/tmp/r")
    monkeypatch.delenv("NBCONTAINER_RUNROOT", raising=False)
    assert board.terminal() == "NBCONTAINER_ROOT=/tmp/r nbc exec -it web sh"
    assert "nbc exec -it web sh" in board.status.value


def test_ports_tab_links(board, client, monkeypatch):
    svc = client.container_service
    _run(client, "app")
    original = svc.list

    def with_ports(all=False, filters=None):
        rows = original(all=all, filters=filters)
        for r in rows:
            r["Ports"] = [{"IP": "0.0.0.0", "PrivatePort": 5000, "PublicPort": 8080, "Type": "tcp"}]
        return rows

    monkeypatch.setattr(svc, "list", with_ports)
    board.refresh()
    assert 'href="http://127.0.0.1:8080/"' in board.ports_html.value and "5000/tcp" in board.ports_html.value


def test_lifecycle_events_refresh_debounced(client):
    board = Dashboard(client=client, threaded=True, watch_exits=False)
    try:
        before = board.refreshes
        _run(client, "late")  # the fake service publishes nothing: announce it like the real one does
        for _ in range(20):
            emit(Lifecycle("container", "start", "x" * 64, "late"))
        deadline = time.monotonic() + 3
        while board.refreshes == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.4)
        assert board.refreshes == before + 1  # a burst of events gives one refresh
        assert "late" in board.containers_html.value
        emit(Lifecycle("network", "create", "n"))  # not ours: ignored
        time.sleep(0.4)
        assert board.refreshes == before + 1
    finally:
        board.close()
    emit(Lifecycle("container", "start", "y" * 64))
    time.sleep(0.4)
    assert board.refreshes == before + 1  # closed: unsubscribed


def test_exit_watcher_refreshes_once_per_container(client):
    _run(client, "w1")
    board = Dashboard(client=client, threaded=True, watch_exits=True)
    try:
        cid = client.container_service.resolve("w1")
        assert cid in board._watched
        board.refresh()
        threads = [t for t in threading.enumerate() if t.name.startswith("nbc-wait-")]
        assert len(threads) <= 1  # never a second waiter for the same container
    finally:
        board.close()


def test_refresh_50_containers_and_50_images_under_200ms(client):
    images = client.image_service
    for i in range(49):
        iid = "sha256:" + f"{i:02x}" * 32
        images.images[iid] = dict(images.images[IMAGE_ID], Id=iid, RepoTags=[f"img{i}:latest"])
    for i in range(50):
        _run(client, f"c{i}")
    board = Dashboard(client=client, threaded=False, watch_exits=False)
    try:
        timings = []
        for _ in range(5):
            board.containers_html.value = ""  # force a real update of every trait
            board.refresh()
            timings.append(board.last_refresh_seconds)
        assert board.containers_html.value.count("<tr>") == 51
        assert board.images_html.value.count("<tr>") == 51
        assert min(timings) < 0.2, timings
    finally:
        board.close()


def test_log_viewer_follows_from_a_thread(board, client):
    _run(client, "talk", ("echo", "hello"))
    lines_sent = threading.Event()

    def logs(name, stdout=True, stderr=True, follow=False, tail="all", **kw):
        yield ("stdout", b"one\n")
        yield ("stderr", b"two\n")
        lines_sent.set()
        time.sleep(0.05)
        yield ("stdout", b"three\n")

    client.container_service.logs = logs
    board.follow("talk")
    deadline = time.monotonic() + 3
    while len(board.log_out.outputs) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    texts = [(o["name"], o["text"]) for o in board.log_out.outputs]
    assert texts == [("stdout", "one\n"), ("stderr", "two\n"), ("stdout", "three\n")]
    deadline = time.monotonic() + 3
    while "not following" not in board.log_title.value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "not following" in board.log_title.value


def test_log_follower_stop_interrupts_a_blocked_follow(client):
    got = []
    blocked = threading.Event()

    class Svc:
        def logs(self, *a, **k):
            yield ("stdout", b"first\n")
            blocked.set()
            while True:  # a container that prints nothing more
                time.sleep(0.01)

    class Client:
        container_service = Svc()

    follower = LogFollower(Client(), "c", lambda s, t: got.append(t)).start()
    assert blocked.wait(3)
    start = time.monotonic()
    follower.stop()
    assert not follower.running and time.monotonic() - start < 2
    assert got == ["first\n"]


def test_log_follow_of_a_removed_container(board, client):
    board.follow("nosuch")
    deadline = time.monotonic() + 3
    while "no longer exists" not in board.log_title.value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "no longer exists" in board.log_title.value
    assert "No such container" in board.status.value


def test_concurrent_refreshes_are_safe(client):
    for i in range(10):
        _run(client, f"c{i}")
    board = Dashboard(client=client, threaded=True, watch_exits=False)
    errors = []

    def hammer():
        try:
            for _ in range(20):
                board.refresh()
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    try:
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert board.containers_html.value.count("<tr>") == 11
    finally:
        board.close()


def test_container_panel_is_live_and_stable(client):
    c = _run(client, "web")
    panel = ContainerPanel(c, follow=False)
    try:
        assert repr(panel) == "ContainerPanel(web)"
        assert "web" in panel.header.value and "running" in panel.header.value
        client.container_service.stop("web")
        emit(Lifecycle("container", "stop", c.id, "web"))
        deadline = time.monotonic() + 3
        while "Exited" not in panel.header.value and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "Exited (137)" in panel.header.value
        client.container_service.remove("web")
        emit(Lifecycle("container", "destroy", c.id, "web"))
        deadline = time.monotonic() + 3
        while "removed" not in panel.header.value and time.monotonic() < deadline:
            time.sleep(0.02)
        assert panel.removed
    finally:
        panel.close()


def test_container_panel_log_tail_for_a_finished_container(client):
    c = client.containers.create("busybox", ["echo", "bye"], name="done")
    client.container_service.start("done")
    c.reload()
    panel = ContainerPanel(c)
    try:
        assert panel.log.outputs[0]["text"] == "bye\n"
    finally:
        panel.close()
    assert bus is not None
