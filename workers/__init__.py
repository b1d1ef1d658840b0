"""Provider workers: pull requests from JetStream, call upstream LLMs, stream answers back."""


def main() -> None:
    from workers.__main__ import main as _main

    _main()
