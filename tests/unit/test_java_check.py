"""The Java check `make run` and the Spark resources do before starting Spark."""

import dagster as dg
import pytest

from stock_platform.platform.spark import java_executable, require_java


def fake_java(folder, version_line: str) -> None:
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)


def test_missing_java_says_what_to_install(setenv, tmp_path):
    setenv(JAVA_HOME=None, PATH=str(tmp_path))  # no java anywhere
    with pytest.raises(dg.Failure) as error:
        require_java()
    message = error.value.description
    assert "Java was not found" in message
    assert "apt-get install openjdk-17-jre-headless" in message and "JAVA_HOME" in message


def test_too_old_java_is_named(setenv, tmp_path):
    fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')
    setenv(JAVA_HOME=str(tmp_path))
    with pytest.raises(dg.Failure, match=r"Java 11\.0\.2 found at .* is too old"):
        require_java()


@pytest.mark.parametrize("version_line", ['java version "1.8.0_392"', 'openjdk version "9" 2017-09-21'])
def test_old_version_schemes_are_read(setenv, tmp_path, version_line):
    fake_java(tmp_path, version_line)
    setenv(JAVA_HOME=str(tmp_path))
    with pytest.raises(dg.Failure, match="is too old"):
        require_java()


def test_java_home_wins_over_path(setenv, tmp_path):
    fake_java(tmp_path, 'openjdk version "21.0.1" 2023-10-17')
    setenv(JAVA_HOME=str(tmp_path))
    assert java_executable() == str(tmp_path / "bin" / "java")
    require_java()


def test_the_installed_java_passes():
    require_java()  # Java 17 is a documented prerequisite of `make run` and `make test`
