"""SSH keys: validated OpenSSH public keys with ssh-keygen's own fingerprint."""

import subprocess

import pytest

from accounts.models import AuditLog, SshKey

KEYS = "/api/ssh-keys"


@pytest.fixture
def ssh_keygen(tmp_path):
    """Generate a key pair with the real ssh-keygen; return (public, private, fingerprint)."""

    def generate(key_type: str, bits: int | None = None, comment: str = "ada@laptop"):
        path = tmp_path / f"id_{key_type}_{bits}"
        command = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)]
        if bits:
            command += ["-b", str(bits)]
        subprocess.run(command, check=True)
        listed = subprocess.run(
            ["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True
        ).stdout.split()
        return path.with_suffix(".pub").read_text(), path.read_text(), listed[1]

    return generate


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key_type", "bits", "expected_type"),
    [
        ("ed25519", None, "ssh-ed25519"),
        ("ecdsa", 256, "ecdsa-sha2-nistp256"),
        ("ecdsa", 384, "ecdsa-sha2-nistp384"),
        ("ecdsa", 521, "ecdsa-sha2-nistp521"),
        ("rsa", 2048, "ssh-rsa"),
        ("rsa", 4096, "ssh-rsa"),
    ],
)
def test_a_public_key_gets_the_fingerprint_ssh_keygen_prints(
    owner, ssh_keygen, key_type, bits, expected_type
):
    public, _, fingerprint = ssh_keygen(key_type, bits)

    response = owner.client.post(KEYS, {"name": "laptop", "public_key": public}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["fingerprint"] == fingerprint
    assert body["key_type"] == expected_type
    assert body["public_key"] == public.strip()
    assert owner.client.get(f"{KEYS}/{body['id']}").json()["fingerprint"] == fingerprint


@pytest.mark.django_db
def test_a_private_key_is_refused_and_not_stored(owner, ssh_keygen):
    _, private, _ = ssh_keygen("ed25519")

    response = owner.client.post(KEYS, {"name": "oops", "public_key": private}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "private_key"
    assert "private key" in response.json()["detail"]
    assert not SshKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hello world", "unsupported_key_type"),
        ("ssh-ed25519", "invalid_ssh_key"),
        ("ssh-ed25519 AAAA!!!notbase64", "invalid_ssh_key"),
        ("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==", "invalid_ssh_key"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "unsupported_key_type"),
        ("", "blank"),
    ],
)
def test_garbage_is_a_400_with_a_clear_code(owner, text, code):
    response = owner.client.post(KEYS, {"name": "bad", "public_key": text}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["detail"].startswith("public_key: ")


@pytest.mark.django_db
def test_a_key_whose_body_is_another_type_is_refused(owner, ssh_keygen):
    rsa_public, _, _ = ssh_keygen("rsa", 2048)
    body = rsa_public.split()[1]

    response = owner.client.post(
        KEYS, {"name": "liar", "public_key": f"ssh-ed25519 {body}"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_ssh_key"


@pytest.mark.django_db
def test_rsa_keys_under_2048_bits_are_refused(owner, ssh_keygen):
    public, _, _ = ssh_keygen("rsa", 1024)

    response = owner.client.post(KEYS, {"name": "old", "public_key": public}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "weak_key"


@pytest.mark.django_db
def test_the_same_key_twice_in_one_tenant_is_refused(owner, ssh_keygen):
    public, _, _ = ssh_keygen("ed25519")
    owner.client.post(KEYS, {"name": "laptop", "public_key": public}, format="json")

    response = owner.client.post(
        KEYS,
        {"name": "again", "public_key": public.replace("ada@laptop", "other")},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "duplicate_ssh_key"
    assert SshKey.objects.count() == 1


@pytest.mark.django_db
def test_two_tenants_may_register_the_same_key(two_tenants, ssh_keygen):
    public, _, _ = ssh_keygen("ed25519")

    statuses = [
        account.client.post(KEYS, {"name": "k", "public_key": public}, format="json").status_code
        for account in two_tenants
    ]

    assert statuses == [201, 201]


@pytest.mark.django_db
def test_a_key_can_be_renamed_but_not_replaced(owner, ssh_keygen):
    public, _, _ = ssh_keygen("ed25519")
    other, _, _ = ssh_keygen("ecdsa", 256)
    key_id = owner.client.post(KEYS, {"name": "a", "public_key": public}, format="json").json()[
        "id"
    ]

    renamed = owner.client.patch(f"{KEYS}/{key_id}", {"name": "work"}, format="json")
    replaced = owner.client.patch(f"{KEYS}/{key_id}", {"public_key": other}, format="json")

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "work"
    assert replaced.status_code == 400
    assert replaced.json()["code"] == "immutable"
    assert owner.client.get(f"{KEYS}/{key_id}").json()["public_key"] == public.strip()


@pytest.mark.django_db
def test_adding_and_removing_a_key_is_audited(owner, ssh_keygen):
    public, _, fingerprint = ssh_keygen("ed25519")
    key_id = owner.client.post(KEYS, {"name": "a", "public_key": public}, format="json").json()[
        "id"
    ]

    response = owner.client.delete(f"{KEYS}/{key_id}")

    assert response.status_code == 204
    assert not SshKey.objects.exists()
    entries = AuditLog.objects.for_tenant(owner.tenant).filter(
        action__in=[AuditLog.Action.SSH_KEY_ADDED, AuditLog.Action.SSH_KEY_REMOVED]
    )
    assert sorted(entry.action for entry in entries) == ["ssh_key_added", "ssh_key_removed"]
    assert all(entry.metadata["fingerprint"] == fingerprint for entry in entries)
