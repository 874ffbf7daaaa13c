"""Create-only puts (`put_new`): the primitive the storage gateway's append-only rule rests on."""

import io
import threading

import pytest

from snapshots.engine.exceptions import ObjectExists


@pytest.fixture(params=["local", "s3"])
def store(request, local_store, moto_endpoint):
    if request.param == "local":
        return local_store
    return request.getfixturevalue("s3_store")


def test_put_new_creates_an_object_once_and_never_replaces_it(store):
    store.put_new("snapshots/first", b"original")

    with pytest.raises(ObjectExists):
        store.put_new("snapshots/first", b"replacement")

    assert store.get("snapshots/first") == b"original"
    assert store.stat("snapshots/first").size == len(b"original")


def test_put_new_takes_a_file_and_a_pack_of_blobs(store):
    store.put_new("data/ab/from-a-file", io.BytesIO(b"streamed from a file"))
    store.put_new("data/ab/from-blobs", [b"blob-1|", b"blob-2"])

    assert store.get("data/ab/from-a-file") == b"streamed from a file"
    assert store.get("data/ab/from-blobs") == b"blob-1|blob-2"


def test_of_writers_racing_to_create_one_key_exactly_one_wins(store):
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create(number: int) -> None:
        start.wait()
        try:
            store.put_new("index/contested", f"writer-{number}".encode())
            outcomes.append(f"writer-{number}")
        except ObjectExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [outcome for outcome in outcomes if outcome != "refused"]
    assert len(winners) == 1
    assert store.get("index/contested") == winners[0].encode()


def test_a_large_put_new_goes_up_in_parts_and_is_still_create_only(s3_store):
    s3_store.single_put_max_bytes = 1024
    s3_store.part_bytes = 5 * 1024 * 1024  # S3's smallest part but the last
    data = bytes(range(256)) * (6 * 1024 * 1024 // 256)

    s3_store.put_new("data/cd/large", data)
    with pytest.raises(ObjectExists):
        s3_store.put_new("data/cd/large", b"x" * 2048)

    assert s3_store.get("data/cd/large") == data
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert not uploads.get("Uploads"), "the refused upload was aborted"


def test_stat_tells_a_missing_object_from_a_folder_of_keys(store):
    store.put("data/ef/pack", b"12345")

    assert store.stat("data/ef/pack").size == 5
    assert store.stat("data/ef") is None
    assert store.stat("data/ef/missing") is None
