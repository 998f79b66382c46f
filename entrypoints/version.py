"""The installed version of Kaspero, for `/health` and the User-Agent."""

from importlib.metadata import PackageNotFoundError, version


def kaspero_version() -> str:
    try:
        return version("kaspero")
    except PackageNotFoundError:
        return "0+unknown"
