"""images.toml: what loads, what is refused (with file, image and key named), and what counts as a change."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagelock.config import Config, constraint_clauses, load_config, parse_config
from imagelock.errors import InputError
from imagelock.versions import ORDERS, candidates
from tests.support.tag_histories import tag_history

EXAMPLE = Path(__file__).resolve().parent.parent / "images.toml.example"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "images.toml"
    path.write_text(text)
    return load_config(path)


def test_the_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert set(config.images) == {"web", "base", "cache", "db"}
    web = config.images["web"]
    assert str(web.repository) == "docker.io/library/nginx"
    assert web.matcher is not None
    assert web.matcher.variant == "alpine"
    assert [str(p) for p in web.platforms] == ["linux/amd64", "linux/arm64"]
    assert config.images["db"].tag == "16.4"
    assert str(config.images["db"].repository) == "docker.io/library/postgres"


def test_the_issue_example_loads(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    config = load(
        tmp_path,
        """
[defaults]
platforms = ["linux/amd64", "linux/arm64"]

[registries."registry.example.com:5000"]
insecure = true
ca-cert = "certs/ca.pem"

[images.web]
image = "nginx"
version = ">=1.25,<1.27"
variant = "alpine"
prereleases = false
exclude = ["1.25.2"]
platforms = ["linux/amd64"]

[images.cache]
image = "redis"
tag = "7.2"

[images.ubuntu]
image = "ubuntu"
tag-pattern = '^jammy-(?P<version>\\d{8})$'

[images]
db = "postgres:16.4"
""",
    )
    assert [str(p) for p in config.images["web"].platforms] == ["linux/amd64"]
    assert [str(p) for p in config.images["cache"].platforms] == ["linux/amd64", "linux/arm64"]
    settings = config.registries["registry.example.com:5000"]
    assert settings.insecure
    assert settings.ca_cert == tmp_path / "certs" / "ca.pem"
    assert config.images["ubuntu"].matcher is not None


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("colour = 1\n", "top level", "unknown key 'colour'"),
        ("version = 2\n", "key 'version'", "unsupported version"),
        ("[defaults]\ncolour = 1\n", "[defaults]", "unknown key 'colour'"),
        ("[defaults]\nverify = 1\n", "[defaults]", "key 'verify': expected a policy name"),
        ('[defaults]\nplatforms = "linux/amd64"\n', "[defaults]", "expected a list of strings"),
        ('[defaults]\nplatforms = ["linux"]\n', "[defaults]", "invalid platform 'linux'"),
        ('[defaults]\nplatforms = ["linux/amd46"]\n', "[defaults]", "'amd46' in 'linux/amd46' (known: 386, amd64,"),
        (
            '[images.web]\nimage = "nginx"\ntag = "1"\nplatforms = ["linux/amd46"]\n',
            "[images.web]",
            "key 'platforms': unknown architecture 'amd46' in 'linux/amd46' (known: 386, amd64, ",
        ),
        ('[images.web]\nimage = "nginx"\nversion = ">=1"\nflavour = "x"\n', "[images.web]", "unknown key 'flavour'"),
        ('[images.web]\nimage = "nginx"\nversion = 5\n', "[images.web]", "key 'version': expected a string"),
        ('[images.web]\nimage = "nginx"\nversion = ">=1"\nprereleases = "yes"\n', "[images.web]", "'prereleases'"),
        ('[images.web]\nimage = "nginx"\nversion = ">=1"\nexclude = "1.0"\n', "[images.web]", "'exclude'"),
        ('[images.web]\nimage = "nginx"\nversion = ">=1"\nexclude = ["bad tag"]\n', "[images.web]", "'exclude'"),
        ('[images.web]\nimage = "nginx"\nversion = ">=1"\nplatforms = "linux/amd64"\n', "[images.web]", "'platforms'"),
        ('[images.web]\nimage = "nginx"\nversion = "=>1.25"\n', "[images.web]", "invalid PEP 440 specifier"),
        ('[images.web]\nimage = "nginx"\ntag-pattern = "(unclosed"\n', "[images.web]", "invalid regex"),
        ('[images.web]\nimage = "nginx"\ntag-pattern = "^v(.*)$"\n', "[images.web]", "named group 'version'"),
        ('[images.web]\nimage = "nginx"\ntag = "1"\nversion = ">=1"\n', "[images.web]", "'tag' cannot be combined"),
        (
            '[images.web]\nimage = "nginx"\ntag = "1"\ntag-pattern = "(?P<version>.*)"\n',
            "[images.web]",
            "cannot be combined",
        ),
        ('[images.web]\nimage = "nginx"\ntag = "1"\nvariant = "alpine"\n', "[images.web]", "'variant'"),
        ('[images.web]\nimage = "nginx"\ntag = "bad tag"\n', "[images.web]", "invalid tag"),
        (
            '[images.web]\nimage = "nginx"\nvariant = "alpine"\ntag-pattern = "(?P<version>.*)"\n',
            "[images.web]",
            "'variant' cannot be combined with 'tag-pattern'",
        ),
        ('[images.web]\nimage = "nginx"\n', "[images.web]", "needs one of 'version', 'tag' or 'tag-pattern'"),
        ('[images.web]\nversion = ">=1"\n', "[images.web]", "missing key 'image'"),
        ('[images.web]\nimage = "nginx:1.26"\nversion = ">=1"\n', "[images.web]", "has a tag or digest"),
        ('[images.web]\nimage = "NGINX"\nversion = ">=1"\n', "[images.web]", "key 'image'"),
        ('[images.web]\nimage = 5\nversion = ">=1"\n', "[images.web]", "key 'image': expected a string"),
        ("[images]\nweb = 5\n", "[images.web]", "expected a table"),
        ('[images]\ndb = "postgres"\n', "[images] db", "must be a reference with a tag"),
        ('[images]\ndb = "post gres:1"\n', "[images] db", "invalid image reference"),
        ('[images."bad name"]\nimage = "nginx"\ntag = "1"\n', "[images.bad name]", "invalid name"),
        (
            '[images.web]\nimage = "nginx"\ntag = "1"\n[images.Web]\nimage = "nginx"\ntag = "2"\n',
            "[images.Web]",
            "duplicate name",
        ),
        ('[registries."bad host!"]\ninsecure = true\n', '[registries."bad host!"]', "invalid registry host"),
        ('[registries."r.io"]\ninsecure = "yes"\n', '[registries."r.io"]', "'insecure'"),
        ('[registries."r.io"]\nca-cert = "missing.pem"\n', '[registries."r.io"]', "not found"),
        ('[registries."r.io"]\nconcurrency = 0\n', '[registries."r.io"]', "'concurrency'"),
        ('[registries."r.io"]\ntimeout = -1\n', '[registries."r.io"]', "'timeout'"),
        ('[registries."r.io"]\nproxy = "x"\n', '[registries."r.io"]', "unknown key 'proxy'"),
        ('[registries."r.io"]\nhttp2 = "yes"\n', '[registries."r.io"]', "key 'http2': expected true or false"),
        ('[registries."r.io"]\nhttp3 = true\n', '[registries."r.io"]', "unknown key 'http3'"),
        ('[images.t]\nimage = "a"\ntag-pattern = "(?P<version>.*)"\norder = "semver"\n', "[images.t]", "key 'order'"),
        ('[images.t]\nimage = "a"\nversion = ">=1"\norder = "numerical"\n', "[images.t]", "needs a 'tag-pattern'"),
        (
            '[images.t]\nimage = "a"\ntag-pattern = "(?P<version>.*)"\nversion = ">=1"\norder = "alphabetical"\n',
            "[images.t]",
            "key 'version': does not apply with order 'alphabetical'",
        ),
        (
            '[images.t]\nimage = "a"\ntag-pattern = "(?P<version>.*)"\nprereleases = true\norder = "numerical"\n',
            "[images.t]",
            "key 'prereleases': does not apply with order 'numerical'",
        ),
        ('[images.t]\nimage = "a"\ntag = "1"\norder = "numerical"\n', "[images.t]", "key 'order': only applies"),
    ],
)
def test_bad_input_names_file_image_and_key(tmp_path: Path, text: str, where: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        load(tmp_path, text)
    error = str(raised.value)
    assert error.startswith(f"{tmp_path / 'images.toml'}: {where}")
    assert message in error
    assert "\n" not in error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[images.web\n", "invalid TOML"),
        (b'[images.web]\nimage = "a"\n[images.web]\nimage = "b"\n', "invalid TOML"),  # TOML forbids duplicates
        (b"\xff\xfe garbage", "not UTF-8"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "images.toml"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as raised:
        load_config(path)
    assert str(path) in str(raised.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "images.toml")


def test_empty_file_is_an_empty_project(tmp_path: Path) -> None:
    assert load(tmp_path, "").images == {}


BASE = (
    '[images.web]\nimage = "nginx"\nversion = ">=1.25,<1.27"\n'
    'exclude = ["1.25.2", "1.25.3"]\nplatforms = ["linux/arm64", "linux/amd64"]\n'
)


@pytest.mark.parametrize(
    "same",
    [
        BASE.replace(">=1.25,<1.27", "<1.27, >=1.25"),
        BASE.replace('["1.25.2", "1.25.3"]', '["1.25.3", "1.25.2"]'),
        BASE.replace('["linux/arm64", "linux/amd64"]', '["linux/amd64", "linux/arm64/v8"]'),
        BASE.replace('"nginx"', '"docker.io/library/nginx"'),
        "# a comment\n" + BASE + '[registries."r.io"]\ninsecure = true\n',
        BASE + 'order = "version"\n',  # the default, spelled out
    ],
)
def test_reformatting_is_not_a_change(tmp_path: Path, same: str) -> None:
    before = load(tmp_path, BASE)
    after = load(tmp_path, same)
    assert after.images["web"].spec_hash == before.images["web"].spec_hash
    assert after.inputs_hash == before.inputs_hash


@pytest.mark.parametrize(
    "changed",
    [
        BASE.replace(">=1.25,<1.27", ">=1.25"),
        BASE.replace('["1.25.2", "1.25.3"]', '["1.25.2"]'),
        BASE.replace('["linux/arm64", "linux/amd64"]', '["linux/amd64"]'),
        BASE.replace('"nginx"', '"ghcr.io/nginx/nginx"'),
        BASE + 'variant = "alpine"\n',
        BASE + "prereleases = true\n",
        BASE + "prereleases = false\n",
    ],
)
def test_resolution_relevant_changes_change_the_spec(tmp_path: Path, changed: str) -> None:
    before = load(tmp_path, BASE)
    after = load(tmp_path, changed)
    assert after.images["web"].spec_hash != before.images["web"].spec_hash
    assert after.inputs_hash != before.inputs_hash


def test_adding_an_image_changes_inputs_but_not_other_specs(tmp_path: Path) -> None:
    before = load(tmp_path, BASE)
    after = load(tmp_path, BASE + '[images.cache]\nimage = "redis"\ntag = "7.2"\n')
    assert after.inputs_hash != before.inputs_hash
    assert after.images["web"].spec_hash == before.images["web"].spec_hash


@pytest.mark.parametrize(
    ("text", "spec_hash"),
    [
        (BASE, "sha256:85d6a5560161c050ff39f0ffcb44401c3c72ef34fba48a8c65fe55b5273837c1"),
        (
            "[images.web]\nimage = \"ubuntu\"\ntag-pattern = '^jammy-(?P<version>\\d{8})$'\n",
            "sha256:00ea1c0b6d9ed5daa43d47c6100b7107b336eb256de540e1311bc646f203accb",
        ),
    ],
)
def test_specs_written_before_the_order_key_keep_their_hash(tmp_path: Path, text: str, spec_hash: str) -> None:
    """The hashes imagelock gave these entries before 'order' existed: their locks stay valid."""
    assert load(tmp_path, text).images["web"].spec_hash == spec_hash


def test_choosing_an_order_changes_the_spec(tmp_path: Path) -> None:
    pattern = "[images.web]\nimage = \"nginx\"\ntag-pattern = '^rel-(?P<version>\\d+)$'\n"
    hashes = {load(tmp_path, pattern + f'order = "{order}"\n').images["web"].spec_hash for order in ORDERS}
    assert len(hashes) == 3
    assert load(tmp_path, pattern).images["web"].spec_hash in hashes


def test_the_ubuntu_examples_allow_respins(tmp_path: Path) -> None:
    """images.toml.example and the example in docs/images-toml.md pick ubuntu's respin jammy-20240911.1."""
    documented = (EXAMPLE.parent / "docs" / "images-toml.md").read_text().split("```toml\n")[1].split("```")[0]
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("")
    for config in (load_config(EXAMPLE), load(tmp_path, documented)):
        matcher = config.images["base"].matcher
        assert matcher is not None
        assert candidates(tag_history("ubuntu-2024-10"), matcher)[0].tag == "jammy-20240911.1"


def test_an_unknown_architecture_suggests_the_close_one_and_aliases_stay_known(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean 'amd64'"):
        load(tmp_path, '[defaults]\nplatforms = ["linux/amd46"]\n')
    config = load(tmp_path, '[images.web]\nimage = "nginx"\ntag = "1"\nplatforms = ["linux/x86_64", "Linux/AArch64"]\n')
    assert [str(platform) for platform in config.images["web"].platforms] == ["linux/amd64", "linux/arm64"]


@pytest.mark.parametrize(
    ("entry", "constraint"),
    [
        ('version = ""', "any version"),
        ('version = "===2024.1,>=1"', ">=1,===2024.1"),
        ('version = ">=1"\nexclude = ["tag-pattern", "1.0"]', ">=1, exclude 1.0 tag-pattern"),
        ("tag-pattern = '^a, tag-pattern (?P<version>\\d+), b$'", "tag-pattern ^a, tag-pattern (?P<version>\\d+), b$"),
        ('version = "~=1.2"\nvariant = "slim"\nprereleases = false', "~=1.2, variant slim, no prereleases"),
    ],
)
def test_a_constraint_reads_back_key_by_key(tmp_path: Path, entry: str, constraint: str) -> None:
    spec = parse_config(f'[images.x]\nimage = "nginx"\n{entry}\n', tmp_path / "images.toml").images["x"]
    assert spec.constraint == constraint
    assert constraint_clauses(spec.constraint) == dict(spec.constraint_clauses())
