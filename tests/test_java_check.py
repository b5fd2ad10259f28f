import dagster as dg
import pytest

from stock_platform.java import require_java


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java anywhere
    with pytest.raises(dg.Failure) as error:
        require_java()
    message = error.value.description
    assert "Java was not found" in message
    assert "apt-get install openjdk-17-jre-headless" in message and "JAVA_HOME" in message


def test_too_old_java_is_named(monkeypatch, tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(dg.Failure, match=r"Java 11\.0\.2 found at .* is too old"):
        require_java()


def test_the_installed_java_passes():
    require_java()  # Java 17 is a documented prerequisite of `make run` and `make test`
