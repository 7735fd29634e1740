import pytest

from chartlib import Server, clean_env, floodgate_bin, helm_binaries, start_floodgate


def pytest_report_header(config):
    import subprocess

    lines = []
    for name, path in helm_binaries().items():
        out = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True).stdout.strip()
        lines.append(f"{name}: {path} {out}")
    lines.append(f"floodgate: {floodgate_bin()}")
    return lines


@pytest.fixture(scope="session")
def dev_server():
    """`floodgate serve --profile development` on free loopback ports."""
    server: Server = start_floodgate(
        ["serve", "--profile", "development", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
        clean_env(),
    )
    yield server
    server.stop()
