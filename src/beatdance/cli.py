"""Placeholder; replaced by the real command-line interface."""


def main() -> None:
    print("beatdance")
