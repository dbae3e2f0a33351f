"""Signed bundles: keys, signatures, the operator's trust rules, and the CLI around them.

Every refusal is checked on a real host loading real bundles; the refusals that matter for safety
are also checked to happen before the component is compiled.
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

import corral.registry
from conftest import copy_as
from corral import ConfigError, PluginHost, SignatureError
from corral.build import bundle_component
from corral.bundle import Bundle, sha256_hex
from corral.cli import main
from corral.config import load_host_config
from corral.registry import PluginInfo
from corral.signing import PublicKey, SigningKey, sign_bundle

HostFactory = Callable[..., PluginHost]
ACME, OPS, STRANGER = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
TRUSTED = [
    {"name": "acme", "key": ACME.public_key.text},
    {"name": "ops", "key": OPS.public_key.text},
]
REQUIRED = {"keys": TRUSTED, "require_signatures": True}


@pytest.fixture
def plugins(plugin_dir: Callable[..., Path]) -> Path:
    return plugin_dir("hello")


@pytest.fixture
def host_with(tmp_path: Path, compiled_cache_dir: Path) -> Iterator[HostFactory]:
    """A loaded host over tmp_path/plugins (and more dirs), configured through corral.yaml."""
    with ExitStack() as hosts:

        def make(
            trust: dict[str, Any],
            plugins: dict[str, Any] | None = None,
            dirs: tuple[str, ...] = (),
        ) -> PluginHost:
            config = {
                "plugin_dirs": ["plugins", *dirs],
                "data_dir": "data",
                "cache_dir": str(compiled_cache_dir),
                "trust": trust,
                "plugins": {"hello": {"grant": ["config.read"]}} | (plugins or {}),
            }
            path = tmp_path / "corral.yaml"
            path.write_text(yaml.safe_dump(config))
            host = hosts.enter_context(PluginHost(config=load_host_config(path)))
            host.load()
            return host

        yield make


@pytest.fixture
def no_compiling(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each bundle the registry compiles (or takes from the cache)."""
    compiled: list[str] = []
    real = corral.registry.Registry.compiled

    def spy(self: corral.registry.Registry, bundle: Bundle) -> Any:
        compiled.append(bundle.name)
        return real(self, bundle)

    monkeypatch.setattr(corral.registry.Registry, "compiled", spy)
    return compiled


def sign(directory: Path, key: SigningKey = ACME) -> None:
    sign_bundle(Bundle.open(directory), key)


def info(host: PluginHost, directory: str) -> PluginInfo:
    found = [i for i in host.plugins() if i.directory is not None and i.directory.name == directory]
    assert len(found) == 1, found
    return found[0]


def refused(host: PluginHost, directory: str) -> str:
    """The one-line reason bundle `directory` failed to load for."""
    plugin = info(host, directory)
    assert plugin.state == "failed", plugin
    assert plugin.reason and "\n" not in plugin.reason
    return plugin.reason


def test_a_bundle_signed_by_a_trusted_key_loads_and_names_its_signer(
    plugins: Path, host_with: HostFactory
) -> None:
    sign(plugins / "hello", OPS)
    host = host_with(REQUIRED)
    hello = info(host, "hello")
    assert hello.state == "loaded", hello.reason
    assert hello.signer is not None and hello.signer.name == "ops"
    assert hello.signer.key_id == OPS.public_key.key_id
    assert host.call("hello", "greet", {"name": "Ada"}) is not None


def test_a_tampered_manifest_is_refused_before_compiling(
    plugins: Path, host_with: HostFactory, no_compiling: list[str]
) -> None:
    sign(plugins / "hello")
    manifest = plugins / "hello" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("memory_limit: 64MB", "memory_limit: 96MB"))
    reason = refused(host_with(REQUIRED), "hello")
    assert "manifest.yaml changed since it was signed" in reason
    assert no_compiling == []


def test_a_tampered_component_is_refused_before_compiling(
    plugins: Path, host_with: HostFactory, no_compiling: list[str]
) -> None:
    """The attacker swaps the component and fixes the checksum: the signature still catches it.

    The new component is not even valid: refusing it by signature proves nothing was compiled.
    """
    bundle = plugins / "hello"
    sign(bundle)
    junk = b"\0asm\x0d\x00\x01\x00" + b"\xff" * 64
    (bundle / "plugin.wasm").write_bytes(junk)
    manifest = bundle / "manifest.yaml"
    text = manifest.read_text()
    start = text.index('checksum: "sha256:') + len('checksum: "sha256:')
    manifest.write_text(text[:start] + sha256_hex(junk) + text[start + 64 :])
    reason = refused(host_with(REQUIRED), "hello")
    assert "changed since it was signed" in reason
    assert no_compiling == []


def test_a_signature_taken_from_another_bundle_is_refused(
    plugins: Path, host_with: HostFactory
) -> None:
    other = copy_as(plugins, "hello", "other")
    sign(other)
    shutil.copy(other / "signature.json", plugins / "hello" / "signature.json")
    host = host_with(REQUIRED, {"other": {"grant": ["config.read"]}})
    assert info(host, "other").state == "loaded"
    assert "manifest.yaml changed since it was signed" in refused(host, "hello")


def test_a_signature_whose_digests_were_edited_to_match_is_refused(
    plugins: Path, host_with: HostFactory
) -> None:
    """The digests in the file are hints: editing them to fit a changed manifest does not help."""
    bundle = plugins / "hello"
    sign(bundle)
    manifest = bundle / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "# changed\n")
    document = json.loads((bundle / "signature.json").read_text())
    document["manifest_sha256"] = sha256_hex(manifest.read_bytes())
    (bundle / "signature.json").write_text(json.dumps(document))
    assert "the signature does not verify" in refused(host_with(REQUIRED), "hello")


def test_a_key_not_in_trust_keys_is_refused_where_signatures_are_required(
    plugins: Path, host_with: HostFactory
) -> None:
    sign(plugins / "hello", STRANGER)
    reason = refused(host_with(REQUIRED), "hello")
    assert f"signed by key {STRANGER.public_key.key_id}, which is not in trust.keys" in reason


def test_a_signature_file_claiming_a_trusted_key_it_was_not_made_with_is_refused(
    plugins: Path, host_with: HostFactory
) -> None:
    bundle = plugins / "hello"
    sign(bundle, STRANGER)
    document = json.loads((bundle / "signature.json").read_text())
    document |= {"public_key": ACME.public_key.text, "key_id": ACME.public_key.key_id}
    (bundle / "signature.json").write_text(json.dumps(document))
    assert "the signature does not verify" in refused(host_with(REQUIRED), "hello")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": "corral-bundle-signature/2"}',
        "BAD-BASE64",
        "KEY-ID-MISMATCH",
        "SHORT-KEY",
    ],
)
def test_a_malformed_signature_file_is_refused_with_one_line(
    plugins: Path, host_with: HostFactory, content: str
) -> None:
    bundle = plugins / "hello"
    sign(bundle)
    document = json.loads((bundle / "signature.json").read_text())
    if content == "BAD-BASE64":
        content = json.dumps(document | {"signature": "***"})
    elif content == "KEY-ID-MISMATCH":
        content = json.dumps(document | {"key_id": OPS.public_key.key_id})
    elif content == "SHORT-KEY":
        content = json.dumps(document | {"public_key": "ed25519:AAAA"})
    (bundle / "signature.json").write_text(content)
    # refused even where signatures are not required: a broken signature means tampering
    reason = refused(host_with({"keys": TRUSTED}), "hello")
    assert "signature.json" in reason


def test_a_symlinked_signature_file_is_refused(
    tmp_path: Path, plugins: Path, host_with: HostFactory
) -> None:
    sign(plugins / "hello")
    (plugins / "hello" / "signature.json").rename(tmp_path / "elsewhere.json")
    (plugins / "hello" / "signature.json").symlink_to(tmp_path / "elsewhere.json")
    assert "is a symbolic link" in refused(host_with({"keys": TRUSTED}), "hello")


def test_rebundling_removes_the_signature_it_would_break(tmp_path: Path, plugins: Path) -> None:
    bundle = plugins / "hello"
    sign(bundle)
    component = tmp_path / "component.wasm"
    shutil.copy(bundle / "plugin.wasm", component)
    bundle_component(component, bundle)
    assert not (bundle / "signature.json").exists()


def test_an_unrequired_signature_still_loads_and_shows_its_signer(
    plugins: Path, host_with: HostFactory
) -> None:
    sign(plugins / "hello", STRANGER)
    hello = info(host_with({"keys": TRUSTED}), "hello")
    assert hello.state == "loaded", hello.reason
    assert str(hello.signer) == f"key {STRANGER.public_key.key_id} (not a trusted key)"


def test_an_unsigned_bundle_loads_only_where_signatures_are_not_required(
    tmp_path: Path, plugins: Path, host_with: HostFactory
) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    copy_as(plugins, "hello", "vendored")
    shutil.move(plugins / "vendored", vendor / "vendored")
    trust = {"keys": TRUSTED, "plugin_dirs": {"vendor": {"require_signatures": True}}}
    host = host_with(trust, {"vendored": {"grant": ["config.read"]}}, dirs=("vendor",))
    assert info(host, "hello").state == "loaded"
    reason = refused(host, "vendored")
    assert "not signed (no signature.json)" in reason
    assert "trust.plugin_dirs." in reason and "require_signatures" in reason
    assert "not signed" in refused(host_with(REQUIRED), "hello")


def test_a_plugin_dir_accepts_only_its_named_signers(plugins: Path, host_with: HostFactory) -> None:
    sign(plugins / "hello", OPS)
    trust = {"keys": TRUSTED, "plugin_dirs": {"plugins": {"require_signatures": True}}}
    assert info(host_with(trust), "hello").state == "loaded"
    trust["plugin_dirs"]["plugins"]["signers"] = ["acme"]  # type: ignore[index]
    assert "signed by 'ops', which trust.plugin_dirs." in refused(host_with(trust), "hello")


def test_a_name_pinned_to_a_signer_refuses_bundles_signed_by_anyone_else(
    plugins: Path, host_with: HostFactory
) -> None:
    pin = {"hello": {"grant": ["config.read"], "pin": {"signer": "acme"}}}
    sign(plugins / "hello", OPS)
    reason = refused(host_with({"keys": TRUSTED}, pin), "hello")
    assert "pinned to signer 'acme' (plugins.hello.pin.signer)" in reason
    assert "signed by ops (key" in reason
    (plugins / "hello" / "signature.json").unlink()
    assert "this bundle is not signed" in refused(host_with({"keys": TRUSTED}, pin), "hello")
    sign(plugins / "hello", ACME)
    assert info(host_with({"keys": TRUSTED}, pin), "hello").state == "loaded"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"trust": {"keys": [{"name": "a", "key": "rsa:abc"}]}}, 'starts with "ed25519:"'),
        ({"trust": {"keys": [{"name": "a"}]}}, "exactly one of key or file"),
        ({"trust": {"keys": [*TRUSTED, TRUSTED[0]]}}, "key names must be unique: acme"),
        (
            {"trust": {"keys": TRUSTED, "plugin_dirs": {"p": {"signers": ["nobody"]}}}},
            "nobody not in trust.keys",
        ),
        ({"plugins": {"x": {"pin": {"signer": "acme"}}}}, "'acme' is not in trust.keys"),
        ({"plugins": {"x": {"pin": {}}}}, "plugin_dir, signer or both"),
    ],
)
def test_trust_config_errors_name_the_field(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message):
        load_host_config(path)


def test_trusted_keys_can_come_from_files(tmp_path: Path, plugins: Path) -> None:
    ACME.public_key.write(tmp_path / "acme.pub")
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump({"trust": {"keys": [{"name": "acme", "file": "acme.pub"}]}}))
    (trusted,) = load_host_config(path).trust.keyring()
    assert trusted.name == "acme" and trusted.key == ACME.public_key
    assert PublicKey.read(tmp_path / "acme.pub").key_id == ACME.public_key.key_id


def test_keygen_sign_verify_from_the_command_line(
    tmp_path: Path, plugins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "release.key"
    key.parent.mkdir()
    assert main(["keygen", "--out", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = PublicKey.read(key.with_name("release.key.pub"))
    out = capsys.readouterr().out
    assert f"key id {public.key_id}" in out and f"public key {public.text}" in out
    before = key.read_bytes()
    assert main(["keygen", "--out", str(key)]) == 2
    assert "already exists; not overwriting a key" in capsys.readouterr().err
    assert key.read_bytes() == before

    bundle = str(plugins / "hello")
    assert main(["plugins", "verify", bundle]) == 0
    assert capsys.readouterr().out.strip().endswith("a corral:plugin component; unsigned")
    assert main(["sign", bundle, "--key", str(key)]) == 0
    assert f"with key {public.key_id}" in capsys.readouterr().out

    config = tmp_path / "corral.yaml"
    config.write_text(yaml.safe_dump({"trust": {"keys": [{"name": "rel", "key": public.text}]}}))
    assert main(["plugins", "verify", bundle, "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"signed by rel (key {public.key_id})")

    manifest = plugins / "hello" / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "# changed\n")
    assert main(["plugins", "verify", bundle]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.yaml changed since it was signed" in err


def test_signing_with_something_that_is_not_a_key_fails_with_one_line(
    tmp_path: Path, plugins: Path
) -> None:
    not_a_key = tmp_path / "k"
    not_a_key.write_text("hello")
    with pytest.raises(SignatureError, match="not an unencrypted PEM private key"):
        SigningKey.read(not_a_key)
    assert not (plugins / "hello" / "signature.json").exists()
